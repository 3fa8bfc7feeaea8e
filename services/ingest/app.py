"""Wiring of the ingest service: real clients in, worker out (``usage-export ingest``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from services.ingest.worker import IngestWorker
from shared.adapters.kafka import make_consumer, make_producer
from shared.adapters.s3 import S3ObjectStore
from shared.columnar.migration import wait_for_storage_format
from shared.columnar.tables import TableStore
from shared.lifecycle import started
from shared.observability import (
    IngestMetrics,
    ObservabilityServer,
    broker_check,
    flag_check,
    new_registry,
    store_check,
)
from shared.settings import Settings
from shared.startup import wait_for_dependencies

log = logging.getLogger(__name__)


# Every service runner has this signature (deliberately alike): the CLI and `up` call them as one.
async def run_ingest(
    settings: Settings,
    *,
    stop: asyncio.Event,
    on_serving: Callable[[str], None] | None = None,
) -> IngestWorker:
    """Run until ``stop`` is set; then flush, commit and return the worker (for its stats)."""
    registry = new_registry("ingest")
    metrics = IngestMetrics(registry)
    store = S3ObjectStore(settings, settings.aggregates_bucket)
    tables = TableStore.of(settings)
    async with contextlib.AsyncExitStack() as stack:
        await started(stack, store)
        server = await started(
            stack,
            ObservabilityServer(
                registry,
                host=settings.metrics_host,
                port=settings.ingest_metrics_port,
                checks={
                    "broker": broker_check(settings.kafka_bootstrap),
                    "store": store_check(store),
                    "not draining": flag_check(lambda: not stop.is_set(), "draining before exit"),
                },
            ),
        )
        if on_serving is not None:
            on_serving(server.url)  # where /metrics and /health answer (tests, tools)
        # Health first: not ready (and saying why) while the broker or the store is away.
        await wait_for_dependencies(settings, [store], service="ingest", stop=stop)
        await wait_for_storage_format(store, settings)
        producer = await started(stack, make_producer(settings))
        # Built where it starts: an aiokafka client is closed only by its stop.
        consumer = make_consumer(settings, group_id=settings.ingest_group)
        worker = IngestWorker(
            settings, consumer=consumer, producer=producer, tables=tables, metrics=metrics
        )
        consumer.subscribe([settings.topic_events], listener=worker.listener)
        await started(stack, consumer)
        log.info(
            "ingest consuming %s as group %s; metrics and health on %s",
            settings.topic_events,
            settings.ingest_group,
            server.url,
        )
        await worker.run(stop)  # its last step is the final flush and commit
    log.info("ingest stopped: %s", worker.stats)
    return worker
