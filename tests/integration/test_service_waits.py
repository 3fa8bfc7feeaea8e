"""A service started before its broker and store waits for them, not ready meanwhile,
then runs; with nothing coming it gives up after USAGE_STARTUP_WAIT_S (issue 15, item 2)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import aiohttp
import pytest
from aiokafka.errors import KafkaConnectionError

from services.ingest.app import run_ingest
from shared.embedded import EmbeddedStack, ensure_infrastructure
from shared.embedded.ports import free_ports
from shared.settings import Settings


async def status_of(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status


async def until_status(url: str, wanted: int, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while (found := await status_of(url)) != wanted:
        assert time.monotonic() < deadline, f"{url} still answers {found}, not {wanted}"
        await asyncio.sleep(0.5)


async def test_ingest_started_before_its_broker_and_store_waits_then_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="services.ingest.app")
    kafka_port, s3_port, metrics_port = free_ports(3)
    settings = Settings(
        kafka_bootstrap=f"127.0.0.1:{kafka_port}",
        s3_endpoint=f"http://127.0.0.1:{s3_port}",
        s3_access_key="usage-dev",  # the keys the stack below gives its store
        s3_secret_key="usage-dev-secret",
        kafka_idempotence=False,
        metrics_host="127.0.0.1",
        ingest_metrics_port=metrics_port,
        startup_wait_s=240.0,
        kafka_retry_max_s=1.0,
    )
    stop = asyncio.Event()
    serving: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    ingest = asyncio.create_task(run_ingest(settings, stop=stop, on_serving=serving.set_result))
    try:
        health = await asyncio.wait_for(serving, 30.0)
        assert await status_of(f"{health}/health/live") == 200
        assert await status_of(f"{health}/health/ready") == 503, "not ready: nothing answers"
        await asyncio.sleep(2.0)  # a few attempts, each logged
        assert not ingest.done(), "it waits; it does not exit"
        stack = EmbeddedStack(
            tmp_path / "stack", kafka_port=kafka_port, s3_port=s3_port, settings=settings
        )
        async with stack:
            await ensure_infrastructure(stack.settings)
            await until_status(f"{health}/health/ready", 200, within_s=120.0)
            # Ready answers from the health checks; the wait itself ends on its next attempt.
            deadline = time.monotonic() + 60.0
            while not any("ingest consuming" in r.getMessage() for r in caplog.records):
                assert not ingest.done(), "it runs once its dependencies answer"
                assert time.monotonic() < deadline, "ingest never started consuming"
                await asyncio.sleep(0.2)
            stop.set()
            await asyncio.wait_for(ingest, 60.0)
    finally:
        stop.set()
        if not ingest.done():
            ingest.cancel()


async def test_ingest_gives_up_after_the_startup_wait(caplog: pytest.LogCaptureFixture) -> None:
    (nobody,) = free_ports(1)  # nothing listens there
    settings = Settings(
        kafka_bootstrap=f"127.0.0.1:{nobody}",
        s3_endpoint=f"http://127.0.0.1:{nobody}",
        s3_max_attempts=1,
        ingest_metrics_port=0,
        metrics_host="127.0.0.1",
        startup_wait_s=1.5,
        kafka_retry_base_s=0.2,
        kafka_retry_max_s=0.5,
    )
    with pytest.raises(KafkaConnectionError, match=f"127.0.0.1:{nobody}"):
        await asyncio.wait_for(run_ingest(settings, stop=asyncio.Event()), 60.0)
    # A line per attempt; how many attempts fit in 1.5 s depends on the machine's load.
    waits = [r for r in caplog.records if "waiting for" in r.getMessage()]
    assert waits, "it logs while it waits"
    assert [r.getMessage().count("(attempt ") for r in waits] == [1] * len(waits)
    assert "USAGE_STARTUP_WAIT_S" in waits[0].getMessage()
