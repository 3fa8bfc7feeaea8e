"""Wiring of the HTTP API: real clients in, an aiohttp server out (``usage-export api``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from services.api.auth import key_verifier
from services.api.body_reading import body_reader
from services.api.handlers import ExportApi
from services.api.rate_limit import RateLimiter
from services.api.server import ApiRunner
from services.api.waiter import CompletionWaiter
from services.scheduler.store import ScheduleStore
from shared.adapters.kafka import make_producer
from shared.adapters.s3 import S3ObjectStore
from shared.lifecycle import started
from shared.observability import (
    ApiMetrics,
    ObservabilityServer,
    flag_check,
    new_registry,
    service_checks,
)
from shared.settings import Settings
from shared.startup import wait_for_dependencies

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ApiServing:
    """Where a started API answers: the API itself, and its /metrics and /health."""

    api_url: str
    metrics_url: str


def _url(host: str, port: int) -> str:
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"


# Every service runner has this signature (deliberately alike): the CLI and `up` call them as one.
async def run_api(
    settings: Settings,
    *,
    stop: asyncio.Event,
    on_serving: Callable[[ApiServing], None] | None = None,
) -> None:
    """Serve the API until ``stop`` is set; then stop taking requests and return."""
    registry = new_registry("api")
    metrics = ApiMetrics(registry)
    async with contextlib.AsyncExitStack() as stack:
        # Few attempts: a request waits on the store in its path, so an absent store must
        # become a 503 in seconds, not after the services' long retry budget.
        aggregates = await started(
            stack, S3ObjectStore(settings, settings.aggregates_bucket, max_attempts=2)
        )
        exports = await started(
            stack, S3ObjectStore(settings, settings.exports_bucket, max_attempts=2)
        )
        # The waiter's consumer is built where it starts (after the wait for the broker), so
        # that a start-up given up leaves no client unclosed; readiness looks it up then.
        reading: list[CompletionWaiter] = []
        checks = service_checks(
            settings.kafka_bootstrap,
            {"aggregates store": aggregates, "exports store": exports},
            stop,
        )
        checks["completions reader"] = flag_check(
            lambda: bool(reading) and reading[0].running, "not reading completions"
        )
        # Started before the API so that it stops after it: /health/ready answers
        # "draining" while the requests in flight finish.
        server = await started(
            stack,
            ObservabilityServer(
                registry, host=settings.metrics_host, port=settings.api_metrics_port, checks=checks
            ),
        )
        # Health first: not ready (and saying why) while the broker is away. Not the stores:
        # a request met by a store outage is answered 503 at once, at start too.
        await wait_for_dependencies(settings, [], service="api", stop=stop)
        producer = await started(stack, make_producer(settings))
        waiter = await started(
            stack, CompletionWaiter(settings, max_waiting=settings.api_max_waiting)
        )
        reading.append(waiter)
        api = ExportApi(
            settings,
            verifier=key_verifier(settings, aggregates),
            limiter=RateLimiter(settings.api_rate_limit_per_min),
            waiter=waiter,
            producer=producer,
            exports=exports,
            metrics=metrics,
            schedules=ScheduleStore(aggregates),
        )
        application = api.application()
        # Innermost: the body is read (bounded, decoded) before the handler asks for it.
        application.middlewares.append(body_reader(settings.api_body_timeout_s))
        runner = ApiRunner(application, settings)
        # Stops listening, lets requests in flight finish; then the stack stops the rest.
        stack.push_async_callback(runner.cleanup)
        await runner.setup()
        await web.TCPSite(runner, settings.api_host, settings.api_port).start()
        serving = ApiServing(
            api_url=_url(settings.api_host, int(runner.addresses[0][1])),
            metrics_url=server.url,
        )
        log.info("API serving on %s; metrics and health on %s", serving.api_url, server.url)
        if on_serving is not None:
            on_serving(serving)
        await stop.wait()


@contextlib.asynccontextmanager
async def serving_api(
    settings: Settings, *, start_timeout_s: float = 60.0
) -> AsyncIterator[ApiServing]:
    """Run the API in this process for the block (the demo, tests); raises if it fails to
    start, and stops it afterwards."""
    stop = asyncio.Event()
    serving: asyncio.Future[ApiServing] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_api(settings, stop=stop, on_serving=serving.set_result))
    try:
        waitables: list[asyncio.Future[Any]] = [task, serving]
        await asyncio.wait(waitables, timeout=start_timeout_s, return_when="FIRST_COMPLETED")
        if task.done():
            task.result()  # raises why the API did not start
        if not serving.done():
            raise TimeoutError(f"the API did not start within {start_timeout_s:g} s")
        yield serving.result()
    finally:
        stop.set()
        await task
