"""Tries the pending deliveries that are due, each in a task of its own.

At most ``webhook_concurrency`` tries run at once, so a receiver that hangs holds one
slot until the read timeout, never the others, and never the exports (a separate
service on a separate consumer group). Each try: claim the delivery (``If-Match``; a
replica that loses the claim drops it), read the workspace's signing secrets, vet the
URL again (DNS may have changed since the request), sign, POST to the vetted address.
A 2xx ends it; anything else reschedules it with full-jitter backoff, until its next
try would fall past ``webhook_max_age_s`` after its creation: then it is dead-lettered
(so is one claimed past that age: its tries kept ending without a result).
A workspace without a signing secret is dead-lettered at once: nothing unsigned is
ever sent (contract §4a).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import timedelta

from services.delivery.metrics import DeliveryMetrics
from services.delivery.pending import PendingDelivery, PendingStore, instant
from services.delivery.sender import SendResult, send
from shared.adapters.callback_vetting import CallbackRefused, CallbackVetter, VettedCallback
from shared.adapters.webhook_secrets import WebhookSecrets
from shared.clock import Clock, system_clock
from shared.domain.webhooks.schedule import RetrySchedule
from shared.domain.webhooks.signature import sign
from shared.errors import UsageExportError
from shared.settings import Settings

log = logging.getLogger(__name__)

Sender = Callable[..., Awaitable[SendResult]]
#: Beyond a try's own timeouts: how long a claim keeps other replicas off a delivery.
_LEASE_MARGIN_S = 10.0


def schedule_of(settings: Settings) -> RetrySchedule:
    return RetrySchedule(
        base_s=settings.webhook_retry_base_s,
        max_s=settings.webhook_retry_max_s,
        max_age_s=settings.webhook_max_age_s,
    )


def no_secret_error(org_id: str) -> str:
    return (
        f"workspace {org_id} has no webhook secret: create one with "
        f"`usage-export webhooks secret --org {org_id}` and ask for the export again"
    )


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        *,
        pending: PendingStore,
        secrets: WebhookSecrets,
        vetter: CallbackVetter,
        metrics: DeliveryMetrics | None = None,
        clock: Clock = system_clock,
        uniform: Callable[[], float] = random.random,
        sender: Sender = send,
    ) -> None:
        self._settings = settings
        self._pending = pending
        self._secrets = secrets
        self._vetter = vetter
        self._metrics = metrics
        self._clock = clock
        self._uniform = uniform
        self._send = sender
        self._schedule = schedule_of(settings)
        self._lease_s = (
            settings.webhook_dns_timeout_s
            + settings.webhook_connect_timeout_s
            + settings.webhook_read_timeout_s
            + _LEASE_MARGIN_S
        )
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def run(self, stop: asyncio.Event, wake: asyncio.Event) -> None:
        """Poll for due deliveries until ``stop``; then let the tries in flight end."""
        while not stop.is_set():
            wake.clear()
            await self.dispatch_due()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.webhook_poll_interval_s):
                    await _first(stop, wake)
        await self.settle(timeout_s=self._lease_s)

    async def settle(self, *, timeout_s: float) -> None:
        """Wait for the tries in flight; cancel those still running after ``timeout_s``
        (their leases end, and another replica or a restart tries them again)."""
        if not self._tasks:
            return
        _, late = await asyncio.wait(list(self._tasks.values()), timeout=timeout_s)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    async def dispatch_due(self) -> int:
        """Start a try of each due delivery not in flight here (up to the limit)."""
        room = self._settings.webhook_concurrency - len(self._tasks)
        if room <= 0:
            return 0
        try:
            due = await self._pending.due(self._clock(), limit=room, skip=set(self._tasks))
        except UsageExportError as exc:
            log.warning("cannot list pending webhook deliveries (%s); retrying", exc)
            return 0
        started = 0
        for delivery in due:
            if len(self._tasks) >= self._settings.webhook_concurrency:
                break
            if delivery.key in self._tasks:
                continue
            task = asyncio.create_task(self._try(delivery), name=f"webhook-{delivery.name}")
            self._tasks[delivery.key] = task
            task.add_done_callback(functools.partial(self._finished, delivery.key))
            started += 1
        return started

    def _finished(self, key: str, _: asyncio.Task[None]) -> None:
        self._tasks.pop(key, None)

    async def _try(self, delivery: PendingDelivery) -> None:
        if self._metrics is not None:
            self._metrics.in_flight.inc()
        try:
            await self._attempt(delivery)
        except UsageExportError as exc:  # the store: the lease ends, it is tried again
            log.warning("webhook %s: store failure (%s); tried again later", delivery.name, exc)
        except Exception:
            log.exception("webhook %s: unexpected failure; tried again later", delivery.name)
        finally:
            if self._metrics is not None:
                self._metrics.in_flight.dec()

    async def _attempt(self, delivery: PendingDelivery) -> None:
        now = self._clock()
        claimed = await self._pending.claim(delivery, now, self._lease_s)
        if claimed is None:
            return  # another replica has it
        if await self._pending.finished_before(claimed):
            return
        deadline = instant(claimed.created_ms) + timedelta(seconds=self._schedule.max_age_s)
        if now >= deadline:  # its tries kept ending before a result (a crash, a bad record)
            await self._dead(claimed, f"out of time; last error: {claimed.last_error or 'none'}")
            return
        secrets = await self._secrets.signing(claimed.org_id, now)
        if not secrets:
            await self._dead(claimed, no_secret_error(claimed.org_id))
            return
        try:
            vetted: VettedCallback | None = await self._vetter.vet(claimed.callback_url)
        except CallbackRefused as exc:
            vetted, result = None, SendResult(None, f"refused: {exc}")
        if vetted is not None:
            signature = sign(claimed.body, secrets, int(self._clock().timestamp()))
            result = await self._send(
                vetted,
                claimed.body,
                request_id=claimed.request_id,
                signature=signature,
                connect_timeout_s=self._settings.webhook_connect_timeout_s,
                read_timeout_s=self._settings.webhook_read_timeout_s,
            )
        if result.ok:
            await self._pending.delivered(claimed, self._clock())
            self._count("delivered")
            log.info(
                "webhook of %s delivered (HTTP %s, attempt %s)",
                claimed.request_id,
                result.status,
                claimed.attempts,
            )
            return
        self._count("failed")
        error = result.error or "failed"
        now = self._clock()
        next_at = self._schedule.next_attempt(
            instant(claimed.created_ms), now, claimed.attempts, self._uniform
        )
        if next_at is None:
            await self._dead(claimed, error)
            return
        await self._pending.reschedule(claimed, next_at, error)
        log.warning(
            "webhook of %s failed (attempt %s: %s); next try in %.1fs",
            claimed.request_id,
            claimed.attempts,
            error,
            (next_at - now).total_seconds(),
        )

    async def _dead(self, delivery: PendingDelivery, error: str) -> None:
        await self._pending.dead(delivery, error)
        if self._metrics is not None:
            self._metrics.dead.inc()
        log.error(
            "webhook of %s for %s dead-lettered after %s attempt(s): %s",
            delivery.request_id,
            delivery.org_id,
            delivery.attempts,
            error,
        )

    def _count(self, result: str) -> None:
        if self._metrics is not None:
            self._metrics.attempts.labels(result=result).inc()


async def _first(*events: asyncio.Event) -> None:
    """Until any of ``events`` is set."""
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
