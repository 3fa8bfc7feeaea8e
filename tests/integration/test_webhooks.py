"""Webhooks end to end on the real broker and store: the exporter in this process, the
delivery service as a child process (so it can be SIGKILLed), and a receiver on
127.0.0.1 that verifies every signature with the secret `usage-export webhooks secret`
printed.

The receiver fails the first deliveries (500, then a hang past the read timeout, then
500s); the delivery service is killed with the delivery pending and started again; the
receiver still gets the completion, byte for byte as published. Callback URLs to
loopback are refused at request time (a 400 completion, nothing recorded, no POST) when
private addresses are not allowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from services.delivery.app import run_delivery
from services.delivery.pending import DELIVERED_PREFIX, PENDING_PREFIX
from services.exporter.app import run_exporter
from shared import codec
from shared.adapters.export_client import ExportClient, export_request
from shared.adapters.s3 import S3ObjectStore
from shared.domain.webhooks.signature import REQUEST_ID_HEADER, SIGNATURE_HEADER, verify
from shared.settings import Settings, settings_env
from tests.clock import NOW
from tests.integration.api_tools import call, create_key, running_api, window
from tests.integration.columnar_seed import activity, seed_days, store_workspace, versions
from tests.integration.conftest import FreshSettingsFactory
from tests.integration.reliability.processes import ServiceFleet

ORG = "ws-hooks"
#: The receiver's clock is the session's start: a signature's t must lie within this.
TOLERANCE_S = 3600
FAST_RETRIES: dict[str, Any] = {
    "webhook_allow_private": True,
    "webhook_allow_http": True,
    "webhook_retry_base_s": 0.2,
    "webhook_retry_max_s": 1.0,
    "webhook_connect_timeout_s": 1.0,
    "webhook_read_timeout_s": 1.0,
    "webhook_poll_interval_s": 0.2,
    "webhook_max_age_s": 600.0,
}


@dataclass
class Receiver:
    """Answers each POST with the next planned behaviour (then ``then``); records all."""

    secret: str
    plan: list[str] = field(default_factory=list)
    then: str = "500"
    seen: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        header = request.headers.get(SIGNATURE_HEADER, "")
        behaviour = self.plan.pop(0) if self.plan else self.then
        self.seen.append(
            {
                "body": body,
                "request_id": request.headers.get(REQUEST_ID_HEADER),
                "signature": header,
                "verified": verify(
                    header, body, self.secret, now=int(NOW.timestamp()), tolerance_s=TOLERANCE_S
                ),
                "behaviour": behaviour,
            }
        )
        if behaviour == "hang":
            await asyncio.sleep(5)  # past the delivery's 1 s read timeout
        if behaviour == "ok":
            return web.Response(status=204)
        return web.Response(status=500, text="x" * 100_000)  # more than it will read

    def answered_ok(self, request_id: str) -> list[dict[str, Any]]:
        return [
            seen
            for seen in self.seen
            if seen["request_id"] == request_id and seen["behaviour"] == "ok"
        ]


@contextlib.asynccontextmanager
async def receiving(secret: str) -> AsyncIterator[Receiver]:
    receiver = Receiver(secret)
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    receiver.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield receiver
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def exporter(settings: Settings) -> AsyncIterator[ExportClient]:
    stop = asyncio.Event()
    task = asyncio.create_task(run_exporter(settings, stop=stop))
    try:
        async with ExportClient(settings) as client:
            yield client
    finally:
        stop.set()
        await asyncio.wait_for(task, 120)


def new_secret(settings: Settings) -> str:
    """`usage-export webhooks secret --org ORG`, its last line."""
    done = subprocess.run(
        [sys.executable, "-m", "services", "webhooks", "secret", "--org", ORG],
        env=os.environ | settings_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    secret = done.stdout.strip().splitlines()[-1]
    assert secret.startswith("whsec_"), done.stdout
    return secret


def request_with_callback(url: str) -> dict[str, Any]:
    today = NOW.date()
    return export_request(
        ORG,
        "users",
        (today - timedelta(days=7)).isoformat(),
        today.isoformat(),
        request_id=f"hook-{uuid.uuid4()}",
        callback_url=url,
    )


async def until(condition: Any, what: str, timeout_s: float = 90.0) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            while not condition():  # noqa: ASYNC110 - polls the receiver's record
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"no {what} within {timeout_s:g} s") from None


async def stored_keys(settings: Settings, prefix: str) -> list[str]:
    async with S3ObjectStore(settings, settings.exports_bucket) as store:
        return [item.key for item in await store.list_objects(prefix)]


async def test_retries_survive_a_killed_delivery_service_and_every_signature_verifies(
    make_fresh_settings: FreshSettingsFactory, tmp_path: Path
) -> None:
    settings = await make_fresh_settings(**FAST_RETRIES)
    secret = new_secret(settings)
    async with (
        receiving(secret) as receiver,
        ServiceFleet(tmp_path) as fleet,
        exporter(settings) as client,
    ):
        receiver.plan = ["500", "hang", "500"]
        receiver.then = "500"
        delivery = fleet.start("delivery", settings, log_level="INFO")
        await delivery.wait_for_log("delivery consuming")
        message = request_with_callback(receiver.url)
        request_id = message["request_id"]
        completion = await client.request(message)
        assert completion.error is not None
        assert completion.error.status == 404  # the workspace has no data: a failure
        await until(lambda: len(receiver.seen) >= 4, "four failed tries")
        assert delivery.kill() == -9
        pending = await stored_keys(settings, PENDING_PREFIX)
        assert len(pending) == 1  # durable, still to deliver
        assert request_id in pending[0]
        tries_before = len(receiver.seen)
        receiver.then = "ok"
        fleet.start("delivery", settings, log_level="INFO")
        await until(lambda: receiver.answered_ok(request_id), "a 2xx after the restart")
        [delivered] = receiver.answered_ok(request_id)
        assert len(receiver.seen) > tries_before
        for _ in range(50):
            if not await stored_keys(settings, PENDING_PREFIX):
                break
            await asyncio.sleep(0.2)
        assert await stored_keys(settings, PENDING_PREFIX) == []
        assert len(await stored_keys(settings, DELIVERED_PREFIX)) == 1
    assert [seen["behaviour"] for seen in receiver.seen[:3]] == ["500", "hang", "500"]
    assert all(seen["verified"] for seen in receiver.seen), receiver.seen
    assert all(seen["request_id"] == request_id for seen in receiver.seen)
    # exactly the completion published on the topic
    assert orjson.loads(delivered["body"]) == completion.model_dump(mode="json")
    assert delivered["body"] == codec.dumps(completion.model_dump(mode="json"))


async def test_a_successful_export_is_delivered_with_its_download_link(
    make_fresh_settings: FreshSettingsFactory, tmp_path: Path
) -> None:
    settings = await make_fresh_settings(**FAST_RETRIES)
    days = seed_days(3)
    await store_workspace(settings, ORG, activity(7, "hook", 60, days), versions("hook", 5, days))
    secret = new_secret(settings)
    async with (
        receiving(secret) as receiver,
        ServiceFleet(tmp_path) as fleet,
        exporter(settings) as client,
    ):
        receiver.then = "ok"
        delivery = fleet.start("delivery", settings, log_level="INFO")
        await delivery.wait_for_log("delivery consuming")
        message = export_request(
            ORG,
            "users",
            days[0].isoformat(),
            NOW.date().isoformat(),
            request_id=f"hook-{uuid.uuid4()}",
            callback_url=receiver.url,
        )
        completion = await client.request(message)
        assert completion.success, completion
        assert completion.data is not None
        assert completion.data.recordCount > 0
        await until(lambda: receiver.answered_ok(message["request_id"]), "the delivery")
    [seen] = receiver.seen
    assert seen["verified"]
    assert seen["body"] == codec.dumps(completion.model_dump(mode="json"))
    delivered = orjson.loads(seen["body"])
    assert delivered["success"] is True
    assert delivered["data"]["downloadUrl"] == completion.data.downloadUrl


async def test_a_rotated_secret_signs_with_both_during_the_overlap(
    make_fresh_settings: FreshSettingsFactory, tmp_path: Path
) -> None:
    settings = await make_fresh_settings(**FAST_RETRIES)
    old = new_secret(settings)
    new = new_secret(settings)
    async with (
        receiving(new) as receiver,
        ServiceFleet(tmp_path) as fleet,
        exporter(settings) as client,
    ):
        receiver.then = "ok"
        delivery = fleet.start("delivery", settings, log_level="INFO")
        await delivery.wait_for_log("delivery consuming")
        message = request_with_callback(receiver.url)
        await client.request(message)
        await until(lambda: receiver.answered_ok(message["request_id"]), "the delivery")
    [seen] = receiver.seen
    assert seen["verified"]
    assert seen["signature"].count("v1=") == 2
    assert verify(seen["signature"], seen["body"], old, int(NOW.timestamp()), TOLERANCE_S)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
async def test_loopback_callbacks_are_refused_at_request_time(
    make_fresh_settings: FreshSettingsFactory, host: str
) -> None:
    settings = await make_fresh_settings(**(FAST_RETRIES | {"webhook_allow_private": False}))
    async with exporter(settings) as client:
        message = request_with_callback(f"http://{host}:9/hook")
        completion = await client.request(message)
    assert completion.error is not None
    assert completion.error.status == 400
    assert "callback_url host" in completion.error.message
    assert "loopback" in completion.error.message
    async with S3ObjectStore(settings, settings.exports_bucket) as store:
        record = await store.get(f"requests/{ORG}/{message['request_id']}.json")
    assert record is not None
    assert codec.loads(record.body)["callback_url"] is None  # nothing to deliver to


async def test_the_api_refuses_a_private_callback_and_passes_a_public_one_on(
    make_fresh_settings: FreshSettingsFactory,
) -> None:
    strict = await make_fresh_settings(**(FAST_RETRIES | {"webhook_allow_private": False}))
    today = NOW.date()
    body = window((today - timedelta(days=7)).isoformat(), today.isoformat())
    async with running_api(strict) as api:
        key = await create_key(strict, ORG)
        refused = await call(
            f"{api.api_url}/export/users",
            key=key,
            body=body | {"callback_url": "http://localhost:9/hook"},
        )
    assert refused.status == 400
    assert "loopback" in refused.body["message"]

    settings = await make_fresh_settings(**FAST_RETRIES)
    secret = new_secret(settings)
    stop = asyncio.Event()
    services = [
        asyncio.create_task(run_exporter(settings, stop=stop)),
        asyncio.create_task(run_delivery(settings, stop=stop)),
    ]
    try:
        async with receiving(secret) as receiver, running_api(settings) as api:
            receiver.then = "ok"
            key = await create_key(settings, ORG)
            answer = await call(
                f"{api.api_url}/export/users",
                key=key,
                body=body | {"callback_url": receiver.url},
                headers={"Idempotency-Key": "hook-api-1"},
            )
            assert answer.status == 404  # the workspace has no data: a failure, POSTed too
            await until(lambda: receiver.answered_ok("hook-api-1"), "the API request's POST")
    finally:
        stop.set()
        await asyncio.gather(*services)
    [seen] = receiver.seen
    assert seen["verified"]
    assert orjson.loads(seen["body"])["error"]["status"] == 404
