"""The HTTP API when the exporter is slow: 202 with a status route, then the outcome.

No exporter runs at first, so no completion can come within the API's timeout: the
answer is 202 for certain. Once the exporter starts, the status route and an
idempotent retry both give the finished export.
"""

from __future__ import annotations

import asyncio
import time

from services.exporter.app import run_exporter
from services.ingest.app import run_ingest
from tests.integration.api_tools import Answer, call, create_key, running_api, window
from tests.integration.conftest import FreshSettingsFactory
from tests.integration.kafka_tools import produce, wait_until_committed
from tests.integration.test_api import FROM, TO
from tests.integration.test_exporter import EDGE_ORG, edge_events

_OUTCOME_WAIT_S = 120.0


async def _until_settled(url: str, key: str) -> Answer:
    deadline = time.monotonic() + _OUTCOME_WAIT_S
    while True:
        answer = await call(url, method="GET", key=key)
        if answer.status != 202 or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.5)


async def test_no_completion_in_time_gives_202_then_the_status_route_answers(
    make_fresh_settings: FreshSettingsFactory,
) -> None:
    settings = await make_fresh_settings(api_timeout_s=0.5)
    ends = await produce(
        settings, settings.topic_events, [(EDGE_ORG.encode(), value) for value in edge_events()]
    )
    stop = asyncio.Event()
    ingest = asyncio.create_task(run_ingest(settings, stop=stop))
    exporter: asyncio.Task[None] | None = None
    try:
        await wait_until_committed(settings, settings.ingest_group, settings.topic_events, ends)
        key = await create_key(settings, EDGE_ORG)
        async with running_api(settings) as serving:
            pending = await call(
                f"{serving.api_url}/api/public/export/users", key=key, body=window(FROM, TO)
            )
            assert pending.status == 202
            request_id = pending.body["requestId"]
            status_url = f"/api/public/export/requests/{request_id}"
            assert pending.body["statusUrl"] == pending.headers["Location"] == status_url
            assert pending.body["error"] == "Export pending"
            assert int(pending.headers["Retry-After"]) >= 1
            still = await call(f"{serving.api_url}{status_url}", method="GET", key=key)
            assert still.status == 202

            exporter = asyncio.create_task(run_exporter(settings, stop=stop))
            settled = await _until_settled(f"{serving.api_url}{status_url}", key)
            assert settled.status == 200, settled.body
            assert set(settled.body["data"]) >= {"filePath", "downloadUrl", "recordCount"}
            assert settled.body["data"]["filePath"].endswith(f"-{request_id[:8]}.csv")

            retried = await call(
                f"{serving.api_url}/export/users",
                key=key,
                body=window(FROM, TO),
                headers={"Idempotency-Key": request_id},
            )
            assert retried.status == 200
            assert retried.body["data"]["filePath"] == settled.body["data"]["filePath"]

        # A fresh API process knows nothing in memory: the exporter's records answer.
        async with running_api(settings) as fresh:
            remembered = await call(f"{fresh.api_url}{status_url}", method="GET", key=key)
            assert remembered.status == 200
            assert remembered.body["data"]["filePath"] == settled.body["data"]["filePath"]
            unknown = await call(
                f"{fresh.api_url}/export/requests/never-sent", method="GET", key=key
            )
            assert (unknown.status, unknown.body["error"]) == (404, "Not Found")
    finally:
        stop.set()
        await asyncio.gather(ingest, *([exporter] if exporter else []))
