"""Wiring of the ingest service: real clients in, worker out (``usage-export ingest``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from services.ingest.janitor import Janitor
from services.ingest.worker import IngestWorker
from shared.adapters.kafka import make_consumer, make_producer
from shared.adapters.s3 import ObjectStore
from shared.columnar.migration import wait_for_storage_format
from shared.columnar.tables import TableStore
from shared.observability import (
    IngestMetrics,
    ObservabilityServer,
    broker_check,
    flag_check,
    new_registry,
    store_check,
)
from shared.settings import Settings

log = logging.getLogger(__name__)


async def run_ingest(
    settings: Settings,
    *,
    stop: asyncio.Event,
    on_serving: Callable[[str], None] | None = None,
) -> IngestWorker:
    """Run until ``stop`` is set; then flush, commit and return the worker (for its stats)."""
    registry = new_registry("ingest")
    metrics = IngestMetrics(registry)
    consumer = make_consumer(settings, group_id=settings.ingest_group)
    producer = make_producer(settings)
    store = ObjectStore(settings, settings.aggregates_bucket)
    await store.start()
    try:
        await wait_for_storage_format(store, settings)
    except BaseException:
        await store.stop()
        raise
    await producer.start()
    tables = TableStore.of(settings)
    worker = IngestWorker(
        settings, consumer=consumer, producer=producer, tables=tables, metrics=metrics
    )
    server = ObservabilityServer(
        registry,
        host=settings.metrics_host,
        port=settings.ingest_metrics_port,
        checks={
            "broker": broker_check(settings.kafka_bootstrap),
            "store": store_check(store),
            "not draining": flag_check(lambda: not stop.is_set(), "draining before exit"),
        },
    )
    await server.start()
    if on_serving is not None:
        on_serving(server.url)  # where /metrics and /health answer (tests, tools)
    consumer.subscribe([settings.topic_events], listener=worker.listener)
    await consumer.start()
    janitor = Janitor(settings, store, tables)
    janitor_task = asyncio.create_task(janitor.run(stop), name="ingest-janitor")
    try:
        log.info(
            "ingest consuming %s as group %s; metrics and health on %s",
            settings.topic_events,
            settings.ingest_group,
            server.url,
        )
        await worker.run(stop)
    finally:
        janitor_task.cancel()
        await asyncio.gather(janitor_task, return_exceptions=True)
        await consumer.stop()
        await producer.stop()
        await server.stop()
        await store.stop()
    log.info("ingest stopped: %s", worker.stats)
    return worker
