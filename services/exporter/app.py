"""Wiring of the exporter service: real clients in, worker out (``usage-export exporter``)."""

from __future__ import annotations

import asyncio
import logging

from services.exporter.export_job import Exporter
from services.exporter.worker import ExporterWorker
from shared.adapters.kafka import make_consumer, make_producer
from shared.adapters.s3 import ObjectStore
from shared.settings import Settings

log = logging.getLogger(__name__)


async def run_exporter(settings: Settings, *, stop: asyncio.Event) -> None:
    """Answer export requests until ``stop`` is set; then finish those in flight and return."""
    consumer = make_consumer(settings, group_id=settings.exporter_group)
    producer = make_producer(settings)
    aggregates = ObjectStore(settings, settings.aggregates_bucket)
    exports = ObjectStore(settings, settings.exports_bucket)
    try:
        await aggregates.start()
        await exports.start()
        await producer.start()
        worker = ExporterWorker(
            settings,
            consumer=consumer,
            producer=producer,
            exporter=Exporter(settings, aggregates=aggregates, exports=exports),
        )
        consumer.subscribe([settings.topic_export_requests], listener=worker.listener)
        await consumer.start()
        log.info(
            "exporter consuming %s as group %s",
            settings.topic_export_requests,
            settings.exporter_group,
        )
        await worker.run(stop)
        log.info("exporter stopped: %s", worker.stats)
    finally:
        await consumer.stop()
        await producer.stop()
        await exports.stop()
        await aggregates.stop()
