"""Wiring of the delivery service: real clients in, intake and dispatcher out
(``usage-export delivery``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from services.delivery.dispatcher import Dispatcher
from services.delivery.intake import Intake
from services.delivery.metrics import DeliveryMetrics
from services.delivery.pending import PendingStore
from shared.adapters.callback_vetting import CallbackVetter
from shared.adapters.kafka import make_consumer
from shared.adapters.request_ledger import RequestLedger
from shared.adapters.s3 import S3ObjectStore
from shared.adapters.webhook_secrets import WebhookSecrets
from shared.lifecycle import started
from shared.observability import ObservabilityServer, new_registry, service_checks
from shared.settings import Settings
from shared.startup import wait_for_dependencies

log = logging.getLogger(__name__)

#: After stop, how long the intake may take to finish its batch before it is cancelled
#: (uncommitted: read again after a restart, and its deliveries are not made twice).
_INTAKE_STOP_S = 10.0


# Every service runner has this signature (deliberately alike): the CLI and `up` call them as one.
async def run_delivery(
    settings: Settings,
    *,
    stop: asyncio.Event,
    on_serving: Callable[[str], None] | None = None,
) -> None:
    """Deliver webhooks until ``stop`` is set; then let the tries in flight end and return."""
    registry = new_registry("delivery")
    metrics = DeliveryMetrics(registry)
    async with contextlib.AsyncExitStack() as stack:
        aggregates = await started(stack, S3ObjectStore(settings, settings.aggregates_bucket))
        exports = await started(stack, S3ObjectStore(settings, settings.exports_bucket))
        server = await started(
            stack,
            ObservabilityServer(
                registry,
                host=settings.metrics_host,
                port=settings.delivery_metrics_port,
                checks=service_checks(
                    settings.kafka_bootstrap,
                    {"aggregates store": aggregates, "exports store": exports},
                    stop,
                ),
            ),
        )
        if on_serving is not None:
            on_serving(server.url)
        await wait_for_dependencies(settings, [], service="delivery", stop=stop)
        pending = PendingStore(exports)
        wake = asyncio.Event()
        dispatcher = Dispatcher(
            settings,
            pending=pending,
            secrets=WebhookSecrets(aggregates, overlap_s=settings.webhook_secret_overlap_s),
            vetter=CallbackVetter.of(settings),
            metrics=metrics,
        )
        consumer = make_consumer(settings, group_id=settings.delivery_group)
        intake = Intake(
            settings,
            consumer=consumer,
            ledger=RequestLedger(exports),
            pending=pending,
            wake=wake,
            metrics=metrics,
        )
        consumer.subscribe([settings.topic_export_completions])
        await started(stack, consumer)
        log.info(
            "delivery consuming %s as group %s; metrics and health on %s",
            settings.topic_export_completions,
            settings.delivery_group,
            server.url,
        )
        intake_task = asyncio.create_task(intake.run(stop), name="webhook-intake")
        dispatch_task = asyncio.create_task(dispatcher.run(stop, wake), name="webhook-dispatch")
        done, _ = await asyncio.wait(
            {intake_task, dispatch_task, asyncio.ensure_future(stop.wait())},
            return_when=asyncio.FIRST_COMPLETED,
        )
        failed = [task for task in (intake_task, dispatch_task) if task in done]
        stop.set()  # one part ending on its own (a failure) stops the other
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(intake_task), _INTAKE_STOP_S)
        intake_task.cancel()
        await asyncio.gather(intake_task, dispatch_task, return_exceptions=True)
        for task in failed:
            error = None if task.cancelled() else task.exception()
            if error is not None:
                raise error
        log.info("delivery stopped")
