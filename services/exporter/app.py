"""Wiring of the exporter service: real clients in, worker out (``usage-export exporter``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from services.exporter.destinations import open_copiers
from services.exporter.export_job import Exporter
from services.exporter.worker import ExporterWorker
from shared.adapters.ingest_progress import IngestProgress
from shared.adapters.kafka import make_consumer, make_producer
from shared.adapters.object_store import ObjectStore
from shared.adapters.s3 import S3ObjectStore
from shared.columnar.migration import wait_for_storage_format
from shared.columnar.tables import TableStore, workspace_ids
from shared.destinations import load_destinations
from shared.errors import StorageFormatMismatch, UsageExportError
from shared.lifecycle import in_background, started
from shared.observability import ExporterMetrics, ObservabilityServer, new_registry, service_checks
from shared.settings import Settings
from shared.startup import wait_for_dependencies

log = logging.getLogger(__name__)


# Every service runner has this signature (deliberately alike): the CLI and `up` call them as one.
async def run_exporter(
    settings: Settings,
    *,
    stop: asyncio.Event,
    on_serving: Callable[[str], None] | None = None,
) -> None:
    """Answer export requests until ``stop`` is set; then finish those in flight and return."""
    registry = new_registry("exporter")
    metrics = ExporterMetrics(registry)
    async with contextlib.AsyncExitStack() as stack:
        aggregates = await started(stack, S3ObjectStore(settings, settings.aggregates_bucket))
        exports = await started(stack, S3ObjectStore(settings, settings.exports_bucket))
        server = await started(
            stack,
            ObservabilityServer(
                registry,
                host=settings.metrics_host,
                port=settings.exporter_metrics_port,
                checks=service_checks(
                    settings.kafka_bootstrap,
                    {"aggregates store": aggregates, "exports store": exports},
                    stop,
                ),
            ),
        )
        if on_serving is not None:
            on_serving(server.url)  # where /metrics and /health answer (tests, tools)
        # Health first: not ready (and saying why) while the broker is away. Not the stores:
        # a request met by a store outage is answered 503 past its deadline, at start too.
        await wait_for_dependencies(settings, [], service="exporter", stop=stop)
        # In the background: a store that is down must still get its requests answered
        # (503 past the deadline), and a store of an older format stops the exporter.
        format_check = in_background(
            stack, _refuse_old_format(aggregates, settings, stop), name="exporter-format-check"
        )
        producer = await started(stack, make_producer(settings))
        progress = await started(stack, IngestProgress(settings))
        copiers = await open_copiers(stack, settings, load_destinations())
        exporter = Exporter(
            settings,
            tables=TableStore.of(settings),
            exports=exports,
            progress=progress,
            destinations=copiers,
        )
        in_background(stack, _warm_up(aggregates, exporter), name="exporter-warm-up")
        # Requests are few and latency counts: do not let an empty fetch wait 500 ms.
        consumer = make_consumer(settings, group_id=settings.exporter_group, fetch_max_wait_ms=50)
        worker = ExporterWorker(
            settings,
            consumer=consumer,
            producer=producer,
            exporter=exporter,
            metrics=metrics,
        )
        consumer.subscribe([settings.topic_export_requests], listener=worker.listener)
        await started(stack, consumer)
        log.info(
            "exporter consuming %s as group %s; metrics and health on %s",
            settings.topic_export_requests,
            settings.exporter_group,
            server.url,
        )
        await worker.run(stop)
        log.info("exporter stopped: %s", worker.stats)
        failure = format_check.exception() if format_check.done() else None
        if failure is not None:
            raise failure


async def _refuse_old_format(store: ObjectStore, settings: Settings, stop: asyncio.Event) -> None:
    """Stop the exporter if the store holds an older storage format only (then raise it)."""
    try:
        await wait_for_storage_format(store, settings)
    except StorageFormatMismatch:
        log.error("the aggregates bucket holds an older storage format only: stopping")
        stop.set()
        raise


async def _warm_up(aggregates: ObjectStore, exporter: Exporter) -> None:
    """Open the workspaces' tables and the query engine while the group is joined (a
    store that is away only leaves the first exports slower)."""
    began = time.monotonic()
    try:
        orgs = await workspace_ids(aggregates)
    except UsageExportError:
        log.warning("warm-up: cannot list the workspaces; first exports open their tables")
        return
    try:
        opened = await exporter.warm_up(orgs)
    except Exception:  # the task's error is never read: say it here, exports go on
        log.warning("warm-up failed; first exports open their tables", exc_info=True)
        return
    log.info(
        "warm-up: the tables of %d of %d workspaces open in %.1fs",
        opened,
        len(orgs),
        time.monotonic() - began,
    )
