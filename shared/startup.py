"""Waiting at start for the broker and the store, as a service in a cluster must.

Pods start before Kafka or the object store are ready. A service starts its
observability server first (``/health/live`` answers, ``/health/ready`` says which
dependency is away), then :func:`wait_for_dependencies` tries the broker (a TCP
connection to a bootstrap address) and the stores it is given (one bucket check each)
with the broker's backoff, logging once per attempt, for ``USAGE_STARTUP_WAIT_S``; past
it the service exits with the error of the dependency still away (one line from the
command line). Ingest waits for the store too (it can do nothing without it); the
exporter and the API wait for the broker only, because a request that meets a store
outage is answered 503, at start as at any time; the compactor waits for the store only
(it uses no broker).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from aiokafka.errors import KafkaConnectionError

from shared.adapters.object_store import ObjectStore
from shared.errors import StoreUnavailable, UsageExportError
from shared.observability.checks import tcp_reachable
from shared.retry import broker_backoff
from shared.settings import Settings

log = logging.getLogger(__name__)


class StoppedWhileWaiting(UsageExportError):
    """The service was asked to stop before its dependencies answered: a clean exit."""


async def _away(
    settings: Settings, stores: Sequence[ObjectStore], *, broker: bool
) -> list[Exception]:
    """What does not answer right now: the broker's error, then each store's."""
    away: list[Exception] = []
    try:
        if broker:
            await tcp_reachable(settings.kafka_bootstrap)
    except (OSError, ValueError) as exc:
        away.append(KafkaConnectionError(f"broker {settings.kafka_bootstrap}: {exc}"))
    for store in stores:
        try:
            await store.check_bucket()
        except UsageExportError as exc:
            away.append(StoreUnavailable(str(exc)))
    return away


async def wait_for_dependencies(
    settings: Settings,
    stores: Sequence[ObjectStore],
    *,
    service: str,
    stop: asyncio.Event,
    broker: bool = True,
) -> None:
    """Return once the broker (unless ``broker`` is false: the compactor uses none) and
    every store answer; raise the first one still away after ``startup_wait_s``
    (:class:`StoppedWhileWaiting` if ``stop`` is set meanwhile)."""
    deadline = time.monotonic() + settings.startup_wait_s
    delays = broker_backoff(settings).delays()
    attempt = 0
    while away := await _away(settings, stores, broker=broker):
        attempt += 1
        left = deadline - time.monotonic()
        missing = "; ".join(str(error) for error in away)
        if left <= 0:
            log.warning(
                "%s: waiting for %s (attempt %d; USAGE_STARTUP_WAIT_S is over: giving up)",
                service,
                missing,
                attempt,
            )
            raise away[0]
        delay = min(next(delays), left)
        log.warning(
            "%s: waiting for %s (attempt %d; trying again in %.1fs, %.0fs left of "
            "USAGE_STARTUP_WAIT_S)",
            service,
            missing,
            attempt,
            delay,
            left,
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        if stop.is_set():
            raise StoppedWhileWaiting(f"{service} stopped before its dependencies answered")
    if attempt:
        log.info("%s: the broker and the store answer after %d attempts", service, attempt)
