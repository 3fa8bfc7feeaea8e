"""Retrying: one backoff policy per dependency, one loop that decides from ``retriable``.

A :class:`Backoff` is a policy (first and longest wait, jitter, how many tries); each
dependency has one, read from settings (:func:`store_backoff`, :func:`broker_backoff`).
:func:`retry` runs an action and, while what it raises is retriable, waits the policy's
next delay and runs it again; a hook logs each failed try, another may end the waiting
early. A deadline is not part of a policy: a caller bounds the whole wait with
``asyncio.timeout``, which also ends a call that hangs (a policy cannot).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from aiokafka.errors import KafkaTimeoutError

from shared.settings import Settings

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff: ``base_s``, twice that, ... up to ``max_s``; with ``jitter``
    each wait is scaled by a random factor in [0.5, 1.5); ``attempts`` bounds the tries
    (None: until the action succeeds or raises something not retriable)."""

    base_s: float
    max_s: float
    jitter: bool = False
    attempts: int | None = None

    def delays(self) -> Iterator[float]:
        """The wait after each failed try, before jitter."""
        delay = self.base_s
        while True:
            yield delay
            delay = min(delay * 2, self.max_s)


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed try, as the hooks see it."""

    attempt: int  # 1 for the first try
    error: Exception
    delay_s: float  # how long until the next try (jitter included)
    at_max: bool  # the backoff has reached ``max_s``


def store_backoff(settings: Settings) -> Backoff:
    """The object store's policy (``USAGE_S3_RETRY_BASE_S`` / ``USAGE_S3_RETRY_MAX_S``)."""
    return Backoff(settings.s3_retry_base_s, settings.s3_retry_max_s)


def broker_backoff(settings: Settings) -> Backoff:
    """The broker's policy (``USAGE_KAFKA_RETRY_BASE_S`` / ``USAGE_KAFKA_RETRY_MAX_S``)."""
    return Backoff(settings.kafka_retry_base_s, settings.kafka_retry_max_s)


def is_retriable(exc: BaseException) -> bool:
    """Whether trying again can help, as the error says of itself: the project's errors
    and aiokafka's carry ``retriable``. aiokafka marks its timeout permanent, yet it is
    how a send reports a broker that did not answer in time (its own retries spent)."""
    if isinstance(exc, KafkaTimeoutError):
        return True
    return getattr(exc, "retriable", False) is True


async def retry(
    action: Callable[[], Awaitable[T]],
    backoff: Backoff,
    *,
    retriable: Callable[[Exception], bool] = is_retriable,
    on_retry: Callable[[Failure], None] | None = None,
    give_up: Callable[[Failure], bool] | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    uniform: Callable[[], float] = random.random,
) -> T:
    """``await action()``, tried again after each retriable failure, waiting as ``backoff``
    says. What is not retriable, the last try's error, or a failure ``give_up`` accepts
    is raised as is; ``on_retry`` sees every failure that is retried (log it there)."""
    delays = backoff.delays()
    attempt = 0
    while True:
        attempt += 1
        try:
            return await action()
        except Exception as exc:
            delay = next(delays)
            pause = delay * (0.5 + uniform()) if backoff.jitter else delay
            failure = Failure(attempt, exc, pause, at_max=delay >= backoff.max_s)
            if (
                not retriable(exc)
                or attempt == backoff.attempts
                or (give_up is not None and give_up(failure))
            ):
                raise
            if on_retry is not None:
                on_retry(failure)
        await sleep(pause)
