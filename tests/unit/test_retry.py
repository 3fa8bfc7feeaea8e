"""The retry helper (shared.retry) with a fake sleep, and the callers that use it: broker
sends wait on the broker's backoff, not the store's, and an error that says retrying
cannot help is raised at once instead of retried forever."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    TopicAuthorizationFailedError,
)

from services.exporter.worker import ExporterWorker
from shared.errors import (
    FencedOut,
    PreconditionFailed,
    RetriableError,
    StorageFormatMismatch,
    StoreUnavailable,
)
from shared.retry import Backoff, Failure, broker_backoff, is_retriable, retry, store_backoff
from shared.settings import Settings


class Flaky:
    """Raises each of ``errors`` on successive calls, then answers ``"done"``."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


class Sleeps:
    """A fake ``asyncio.sleep`` that records each wait and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def test_the_backoff_doubles_up_to_its_longest_wait() -> None:
    delays = Backoff(0.2, 1.0).delays()
    assert [next(delays) for _ in range(6)] == [0.2, 0.4, 0.8, 1.0, 1.0, 1.0]


async def test_retriable_failures_are_retried_after_the_backoff() -> None:
    action, sleeps = Flaky(StoreUnavailable("down"), StoreUnavailable("down")), Sleeps()
    assert await retry(action, Backoff(0.5, 10.0), sleep=sleeps) == "done"
    assert action.calls == 3
    assert sleeps.waits == [0.5, 1.0]


async def test_an_error_that_is_not_retriable_is_raised_at_once() -> None:
    action, sleeps = Flaky(PreconditionFailed("lost a race")), Sleeps()
    with pytest.raises(PreconditionFailed):
        await retry(action, Backoff(0.5, 10.0), sleep=sleeps)
    assert (action.calls, sleeps.waits) == (1, [])


async def test_cancellation_is_never_retried() -> None:
    action, sleeps = Flaky(asyncio.CancelledError()), Sleeps()  # type: ignore[arg-type]
    with pytest.raises(asyncio.CancelledError):
        await retry(action, Backoff(0.5, 10.0), retriable=lambda exc: True, sleep=sleeps)
    assert action.calls == 1


async def test_the_last_attempt_raises_its_error() -> None:
    errors = [StoreUnavailable(f"try {n}") for n in range(1, 5)]
    action, sleeps = Flaky(*errors), Sleeps()
    with pytest.raises(StoreUnavailable, match="try 3"):
        await retry(action, Backoff(0.1, 10.0, attempts=3), sleep=sleeps)
    assert action.calls == 3
    assert sleeps.waits == [0.1, 0.2]


async def test_the_retry_hook_sees_each_retried_failure_once() -> None:
    seen: list[Failure] = []
    action = Flaky(StoreUnavailable("a"), StoreUnavailable("b"))
    await retry(action, Backoff(1.0, 1.5), on_retry=seen.append, sleep=Sleeps())
    assert [(f.attempt, str(f.error), f.delay_s, f.at_max) for f in seen] == [
        (1, "a", 1.0, False),
        (2, "b", 1.5, True),
    ]


async def test_giving_up_once_the_backoff_is_longest() -> None:
    action, sleeps = Flaky(*[StoreUnavailable(f"try {n}") for n in range(1, 10)]), Sleeps()
    with pytest.raises(StoreUnavailable, match="try 3"):
        await retry(action, Backoff(1.0, 4.0), give_up=lambda failure: failure.at_max, sleep=sleeps)
    assert sleeps.waits == [1.0, 2.0]  # the third failure came at the longest backoff


async def test_jitter_scales_each_wait_between_half_and_one_and_a_half() -> None:
    action, sleeps = Flaky(StoreUnavailable("a"), StoreUnavailable("b")), Sleeps()
    factors = iter([0.0, 0.99])
    await retry(action, Backoff(1.0, 8.0, jitter=True), sleep=sleeps, uniform=lambda: next(factors))
    assert sleeps.waits == [0.5, pytest.approx(2 * 1.49)]


async def test_a_callers_predicate_decides_what_is_retriable() -> None:
    sleeps = Sleeps()
    # OSError says nothing of itself: not retried by default.
    with pytest.raises(OSError, match="reset"):
        await retry(Flaky(OSError("connection reset")), Backoff(0.1, 1.0), sleep=sleeps)
    retried = await retry(
        Flaky(OSError("connection reset")),
        Backoff(0.1, 1.0),
        retriable=lambda exc: isinstance(exc, OSError),
        sleep=sleeps,
    )
    assert retried == "done"
    assert sleeps.waits == [0.1]


@pytest.mark.parametrize(
    ("error", "retriable"),
    [
        (StoreUnavailable("5xx"), True),
        (RetriableError("throttled"), True),
        (PreconditionFailed("lost a race"), False),
        (FencedOut("zombie"), False),
        (StorageFormatMismatch("format 1"), False),
        (KafkaConnectionError(), True),
        (KafkaTimeoutError(), True),  # aiokafka's send timeout: the broker did not answer
        (TopicAuthorizationFailedError(), False),
        (ValueError("bug"), False),
    ],
)
def test_errors_say_whether_retrying_can_help(error: Exception, retriable: bool) -> None:
    assert is_retriable(error) is retriable


def test_each_dependency_has_its_own_policy() -> None:
    settings = Settings(
        s3_retry_base_s=1.0, s3_retry_max_s=9.0, kafka_retry_base_s=0.1, kafka_retry_max_s=2.0
    )
    assert store_backoff(settings) == Backoff(1.0, 9.0)
    assert broker_backoff(settings) == Backoff(0.1, 2.0)
    assert store_backoff(Settings()) == broker_backoff(Settings())  # the same defaults


class RefusingProducer:
    """Every send fails with ``errors`` in turn, then succeeds."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.sends = 0

    async def send_and_wait(self, topic: str, *, key: bytes | None, value: bytes) -> None:
        self.sends += 1
        if self.errors:
            raise self.errors.pop(0)


def exporter_worker(producer: RefusingProducer, settings: Settings) -> ExporterWorker:
    return ExporterWorker(
        settings,
        consumer=cast(AIOKafkaConsumer, None),
        producer=cast(AIOKafkaProducer, producer),
        exporter=cast(Any, None),
    )


async def send(worker: ExporterWorker, producer: RefusingProducer) -> None:
    async def once() -> None:
        await producer.send_and_wait("usage.export-completions", key=None, value=b"{}")

    async with asyncio.timeout(30):  # a guard against retrying forever, not a speed check
        await worker._until_sent(once, "completion of r-1")


async def test_broker_sends_wait_on_the_broker_backoff(caplog: pytest.LogCaptureFixture) -> None:
    """Before: completions retried on USAGE_S3_RETRY_BASE_S (here a minute)."""
    settings = Settings(kafka_retry_base_s=0.001, kafka_retry_max_s=0.002, s3_retry_base_s=60.0)
    producer = RefusingProducer(KafkaTimeoutError(), KafkaTimeoutError(), KafkaTimeoutError())
    with caplog.at_level(logging.WARNING, logger="services.exporter.worker"):
        await send(exporter_worker(producer, settings), producer)
    assert producer.sends == 4
    waits = [record.args[2] for record in caplog.records if isinstance(record.args, tuple)]
    assert waits == [0.001, 0.002, 0.002]


async def test_a_send_the_broker_refuses_for_good_is_not_retried() -> None:
    """Before: any KafkaError was retried, an authorization failure forever."""
    settings = Settings(kafka_retry_base_s=0.001, kafka_retry_max_s=0.002)
    producer = RefusingProducer(*[TopicAuthorizationFailedError() for _ in range(1000)])
    with pytest.raises(TopicAuthorizationFailedError):
        await send(exporter_worker(producer, settings), producer)
    assert producer.sends == 1
