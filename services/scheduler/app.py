"""Wiring of the scheduler service: real clients in, scheduler out (``usage-export scheduler``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaProducer

from services.scheduler.store import ScheduleStore
from services.scheduler.worker import Scheduler
from shared import codec
from shared.adapters.kafka import make_producer
from shared.adapters.s3 import S3ObjectStore
from shared.clock import Clock, system_clock
from shared.lifecycle import started
from shared.observability import (
    ObservabilityServer,
    SchedulerMetrics,
    new_registry,
    service_checks,
)
from shared.settings import Settings
from shared.startup import wait_for_dependencies

log = logging.getLogger(__name__)


class KafkaRequestPublisher:
    """Export requests onto ``topic_export_requests``, keyed by workspace like any request."""

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    async def publish(self, message: dict[str, Any]) -> None:
        await self._producer.send_and_wait(
            self._topic, key=str(message["org_id"]).encode(), value=codec.dumps(message)
        )


# Every service runner has this signature (deliberately alike): the CLI and `up` call them as one.
async def run_scheduler(
    settings: Settings,
    *,
    stop: asyncio.Event,
    on_serving: Callable[[str], None] | None = None,
    clock: Clock | None = None,
) -> None:
    """Publish the due periods of the schedules until ``stop`` is set."""
    clock = clock or system_clock
    registry = new_registry("scheduler")
    metrics = SchedulerMetrics(registry)
    async with contextlib.AsyncExitStack() as stack:
        aggregates = await started(stack, S3ObjectStore(settings, settings.aggregates_bucket))
        server = await started(
            stack,
            ObservabilityServer(
                registry,
                host=settings.metrics_host,
                port=settings.scheduler_metrics_port,
                checks=service_checks(
                    settings.kafka_bootstrap, {"aggregates store": aggregates}, stop
                ),
            ),
        )
        if on_serving is not None:
            on_serving(server.url)
        await wait_for_dependencies(settings, [aggregates], service="scheduler", stop=stop)
        producer = await started(stack, make_producer(settings))
        scheduler = Scheduler(
            ScheduleStore(aggregates, clock=clock),
            KafkaRequestPublisher(producer, settings.topic_export_requests),
            interval_s=settings.scheduler_interval_s,
            grace_s=settings.schedule_grace_s,
            clock=clock,
            metrics=metrics,
        )
        log.info(
            "scheduler publishing to %s every %gs (grace %gs); metrics and health on %s",
            settings.topic_export_requests,
            settings.scheduler_interval_s,
            settings.schedule_grace_s,
            server.url,
        )
        await scheduler.run(stop)
        log.info("scheduler stopped: %s", scheduler.stats)
