"""Wiring of the compactor service: the store in, the compactor's loop out
(``usage-export compactor``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from services.compactor.janitor import Janitor
from services.compactor.metrics import CompactorMetrics
from services.compactor.rounds import Compactor
from services.compactor.shard import Shard
from shared.adapters.s3 import S3ObjectStore
from shared.clock import Clock, system_clock
from shared.columnar.migration import wait_for_storage_format
from shared.columnar.tables import TableStore
from shared.lifecycle import in_background, started
from shared.observability import ObservabilityServer, flag_check, new_registry, store_check
from shared.settings import Settings
from shared.startup import wait_for_dependencies

log = logging.getLogger(__name__)

#: How long the workspace in flight may take to finish once the compactor stops (the pass
#: stops after it); then it is cut, which loses nothing (a rewrite is one Delta commit).
JANITOR_FINISH_S = 30.0


# Every service runner has this signature (deliberately alike): the CLI and `up` call them as one.
async def run_compactor(
    settings: Settings,
    *,
    stop: asyncio.Event,
    on_serving: Callable[[str], None] | None = None,
    clock: Clock | None = None,
) -> None:
    """Tidy the shard's workspaces until ``stop`` is set (``clock`` says which months are
    closed and which days expired: the system's unless a test gives one)."""
    registry = new_registry("compactor")
    metrics = CompactorMetrics(registry)
    shard = Shard.of(settings)
    store = S3ObjectStore(settings, settings.aggregates_bucket)
    async with contextlib.AsyncExitStack() as stack:
        await started(stack, store)
        server = await started(
            stack,
            ObservabilityServer(
                registry,
                host=settings.metrics_host,
                port=settings.compactor_metrics_port,
                checks={
                    "store": store_check(store),
                    "not draining": flag_check(lambda: not stop.is_set(), "draining before exit"),
                },
            ),
        )
        if on_serving is not None:
            on_serving(server.url)  # where /metrics and /health answer (tests, tools)
        # Health first: not ready (and saying why) while the store is away. No broker.
        await wait_for_dependencies(settings, [store], service="compactor", stop=stop, broker=False)
        await wait_for_storage_format(store, settings)
        janitor = Janitor(settings, store, TableStore.of(settings))
        compactor = Compactor(
            settings, store, janitor, shard=shard, metrics=metrics, clock=clock or system_clock
        )
        log.info(
            "compactor tidying shard %s of %s every %gs (full pass every %gs); "
            "metrics and health on %s",
            shard,
            settings.aggregates_bucket,
            settings.compaction_interval_s,
            settings.janitor_interval_s,
            server.url,
        )
        # The workspace in flight finishes (bounded) rather than being cut at exit.
        task = in_background(
            stack, compactor.run(stop), name="compactor", finish_within_s=JANITOR_FINISH_S
        )
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if task.done():  # ended before stop: a failure that is not the store's
            task.result()
    log.info("compactor stopped")
