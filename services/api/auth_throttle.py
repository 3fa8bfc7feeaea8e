"""Limits of key checks, applied *before* a check reads the store or computes a hash.

Failed checks (unknown key id, wrong secret) use up a bucket per key id and one per
client address (:class:`~services.api.rate_limit.FailureLimiter`); an empty bucket
answers 429 with ``Retry-After`` at once. Checks running at once are capped, so a flood
of distinct keys queues instead of taking every core or store connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from services.api.rate_limit import FailureLimiter
from shared.settings import Settings


@dataclass(frozen=True, slots=True)
class Throttled:
    """A key check refused before it ran: answer 429 with this ``Retry-After``."""

    retry_after_s: int
    message: str


class AuthThrottle:
    def __init__(
        self,
        *,
        failures_per_key_per_min: int,
        failures_per_client_per_min: int,
        max_checks: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._by_key = FailureLimiter(failures_per_key_per_min, clock=clock)
        self._by_client = FailureLimiter(failures_per_client_per_min, clock=clock)
        self._slots = asyncio.Semaphore(max_checks)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, clock: Callable[[], float] = time.monotonic
    ) -> AuthThrottle:
        return cls(
            failures_per_key_per_min=settings.api_auth_failures_per_key_per_min,
            failures_per_client_per_min=settings.api_auth_failures_per_client_per_min,
            max_checks=settings.api_max_key_checks,
            clock=clock,
        )

    def take(self, key_id: str, client: str | None) -> Throttled | None:
        """None when a check of ``key_id`` from ``client`` may run (it then holds a token
        of each bucket until :meth:`refund`), else why not."""
        wait_s = self._by_key.take(key_id)
        if wait_s is not None:
            return Throttled(
                wait_s,
                f"Too many failed attempts with this API key id: retry in {wait_s} s",
            )
        if client:
            wait_s = self._by_client.take(client)
            if wait_s is not None:
                self._by_key.refund(key_id)
                return Throttled(
                    wait_s,
                    f"Too many failed API key attempts from this address: retry in {wait_s} s",
                )
        return None

    def refund(self, key_id: str, client: str | None) -> None:
        """The check did not fail (the secret was right): its tokens go back."""
        self._by_key.refund(key_id)
        if client:
            self._by_client.refund(client)

    @contextlib.asynccontextmanager
    async def checking(self) -> AsyncIterator[None]:
        """Hold one of the ``max_checks`` slots for the block."""
        async with self._slots:
            yield
