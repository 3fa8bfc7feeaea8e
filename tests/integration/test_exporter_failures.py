"""The exporter's failure paths and guarantees on the real broker and store: every 400,
404, dead letters, redelivery and topic replay (same file, one object), and signed URLs
that refuse tampering, anonymity and expiry."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio

from services.exporter.app import run_exporter
from shared.adapters.export_client import ExportClient, export_request
from shared.adapters.s3 import S3ObjectStore
from shared.clock import system_clock
from shared.contracts.completions import ExportCompletion
from shared.embedded import ensure_infrastructure, isolated_settings
from shared.settings import Settings
from tests.integration.conftest import InfraStack
from tests.integration.kafka_tools import produce, read_topic, wait_until_committed
from tests.integration.test_exporter import (
    EDGE_DAY,
    EDGE_ORG,
    TODAY,
    download,
    edge_events,
    running_services,
)

WINDOW = ((EDGE_DAY - timedelta(days=1)).isoformat(), (EDGE_DAY + timedelta(days=1)).isoformat())


@dataclass(frozen=True)
class Pipeline:
    settings: Settings
    client: ExportClient


@pytest_asyncio.fixture(scope="module")
async def pipeline(stack: InfraStack) -> AsyncIterator[Pipeline]:
    settings = isolated_settings(stack.settings, "fail" + uuid.uuid4().hex[:10])
    await ensure_infrastructure(settings)
    ends = await produce(
        settings, settings.topic_events, [(EDGE_ORG.encode(), value) for value in edge_events()]
    )
    async with running_services(settings), ExportClient(settings) as client:
        await wait_until_committed(settings, settings.ingest_group, settings.topic_events, ends)
        yield Pipeline(settings=settings, client=client)


def edge_request(data_type: str = "users", **changes: Any) -> dict[str, Any]:
    return export_request(EDGE_ORG, data_type, *WINDOW) | changes


async def csv_keys(settings: Settings) -> list[str]:
    async with S3ObjectStore(settings, settings.exports_bucket) as store:
        return sorted(
            item.key for item in await store.list_objects("") if item.key.endswith(".csv")
        )


BAD_REQUESTS: list[tuple[dict[str, Any], str]] = [
    ({"data_type": "invoices"}, "data_type 'invoices' is unknown"),
    ({"group_by": "source"}, "not available for users"),
    ({"data_type": "projects", "group_by": "model"}, "no subgroups"),
    ({"org_id": "bad org!"}, "org_id"),
    ({"from": {"date": WINDOW[0], "timezone": "Europe/Atlantis"}}, "from.timezone"),
    ({"to": {"date": "2026-13-40", "timezone": "UTC"}}, "to.date"),
    ({"from": {"date": WINDOW[1], "timezone": "UTC"},
      "to": {"date": WINDOW[0], "timezone": "UTC"}}, "before 'from'"),
    ({"from": {"date": (TODAY - timedelta(days=400)).isoformat(), "timezone": "UTC"}},
     "more than 12 months"),
    ({"from": {"date": (TODAY + timedelta(days=3)).isoformat(), "timezone": "UTC"},
      "to": {"date": (TODAY + timedelta(days=4)).isoformat(), "timezone": "UTC"}},
     "in the future"),
]  # fmt: skip


async def test_every_bad_request_is_answered_400(pipeline: Pipeline) -> None:
    messages = [edge_request(**changes) for changes, _ in BAD_REQUESTS]
    completions = await asyncio.gather(*(pipeline.client.request(m) for m in messages))
    for (changes, fragment), completion in zip(BAD_REQUESTS, completions, strict=True):
        assert not completion.success
        assert completion.error is not None
        assert (completion.error.status, completion.error.error) == (400, "Bad Request")
        assert fragment in completion.error.message, (changes, completion.error.message)
        assert completion.data is None
    assert completions[0].org_id == EDGE_ORG
    assert completions[3].org_id is None  # an invalid org id is never echoed


async def test_deployment_subgroups_need_byok(pipeline: Pipeline) -> None:
    byok = await pipeline.client.request(edge_request("models", group_by="deployment"))
    assert byok.success  # the edge workspace is BYOK
    other = export_request("ws-unknown", "models", *WINDOW, group_by="deployment")
    refused = await pipeline.client.request(other)
    assert refused.error is not None
    assert refused.error.status == 400
    assert "BYOK" in refused.error.message


async def test_no_rows_is_404(pipeline: Pipeline) -> None:
    quiet = (EDGE_DAY - timedelta(days=100)).isoformat(), (EDGE_DAY - timedelta(days=90))
    completion = await pipeline.client.request(
        export_request(EDGE_ORG, "models", quiet[0], quiet[1].isoformat())
    )
    assert completion.error is not None
    assert (completion.error.status, completion.error.error) == (404, "No data found")
    nobody = await pipeline.client.request(export_request("ws-nobody", "users", *WINDOW))
    assert nobody.error is not None
    assert nobody.error.status == 404


async def test_unreadable_requests_are_dead_lettered(pipeline: Pipeline) -> None:
    settings = pipeline.settings
    broken = b'{"request_id": "broken-json-1", "org_id": "ws-edge", "data_type": '
    no_id = b'{"org_id": "ws-edge", "data_type": "users"}'
    await pipeline.client.send(broken, key=b"ws-edge")
    await pipeline.client.send(no_id, key=b"ws-edge")
    await pipeline.client.send(b"[1, 2, 3]", key=None)
    completion = await pipeline.client.wait("broken-json-1")
    assert completion.error is not None
    assert completion.error.status == 400
    assert completion.org_id == "ws-edge"
    assert "invalid_json" in completion.error.message
    letters = await read_topic(settings, settings.topic_export_requests_dlq, expected=3)
    # Requests of different partitions are answered concurrently: any order.
    errors = {
        (record.key, record.value): dict(record.headers)["error"].decode() for record in letters
    }
    assert sorted(errors, key=lambda item: item[1]) == [
        (None, b"[1, 2, 3]"),
        (b"ws-edge", no_id),
        (b"ws-edge", broken),
    ]
    assert errors[(b"ws-edge", broken)].startswith("invalid_json")
    assert errors[(b"ws-edge", no_id)].startswith("invalid_request_id")
    assert errors[(None, b"[1, 2, 3]")].startswith("invalid_request: the value must be a JSON")


async def test_redelivered_request_gives_the_same_single_file(pipeline: Pipeline) -> None:
    message = edge_request("assistants")
    first = await pipeline.client.request(message)
    second = await pipeline.client.request(message)
    assert first.data is not None
    assert second.data is not None
    same = ("filePath", "recordCount", "bytes", "sha256", "dateRange")
    assert [getattr(second.data, name) for name in same] == [
        getattr(first.data, name) for name in same
    ]
    keys = await csv_keys(pipeline.settings)
    assert keys.count(first.data.filePath) == 1
    assert [key for key in keys if message["request_id"][:8] in key] == [first.data.filePath]


async def test_signed_url_downloads_and_refuses_tampering_and_anonymity(pipeline: Pipeline) -> None:
    completion = await pipeline.client.request(edge_request("projects"))
    assert completion.data is not None
    url = completion.data.downloadUrl
    body = await download(url)
    assert body.startswith(b"period_start,period_end,org_id,project_id")
    signature_at = url.index("X-Amz-Signature=") + len("X-Amz-Signature=")
    flipped = "0" if url[signature_at] != "0" else "1"
    for refused in (
        url[:signature_at] + flipped + url[signature_at + 1 :],  # tampered
        url.split("?", 1)[0],  # anonymous
        url.replace(completion.data.filePath, "users-usage/other/secret.csv"),
    ):
        with pytest.raises(urllib.error.HTTPError) as failure:
            await download(refused)
        assert failure.value.code in {401, 403}
        failure.value.close()


def _expiry(url: str) -> datetime:
    """The instant a presigned URL stops working, as it says itself."""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    signed = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return signed + timedelta(seconds=int(query["X-Amz-Expires"][0]))


async def test_expired_url_is_refused(pipeline: Pipeline) -> None:
    """Signed for a few seconds (X-Amz-Date has whole seconds: 1 s could be over before the
    first fetch), fetched, then fetched again once the store's clock, which is this
    machine's, is past the expiry the URL states."""
    completion = await pipeline.client.request(edge_request("api_keys"))
    assert completion.data is not None
    async with S3ObjectStore(pipeline.settings, pipeline.settings.exports_bucket) as store:
        short = await store.presign_download(completion.data.filePath, 5)
    expires = _expiry(short)
    assert (await download(short)).startswith(b"period_start")
    past = expires + timedelta(seconds=1)  # the store may compare whole seconds
    await asyncio.sleep(max(0.0, (past - system_clock()).total_seconds()))
    assert system_clock() >= past
    with pytest.raises(urllib.error.HTTPError) as failure:
        await download(short)
    assert failure.value.code == 403
    assert b"expired" in failure.value.read().lower()
    failure.value.close()


async def test_replaying_the_request_topic_changes_nothing(pipeline: Pipeline) -> None:
    """A second exporter group re-reads every request: the same answers, no new file."""
    answered: dict[str, ExportCompletion] = {}
    for data_type in ("users", "models"):
        message = edge_request(data_type)
        answered[message["request_id"]] = await pipeline.client.request(message)
    files_before = await csv_keys(pipeline.settings)
    replay = pipeline.settings.model_copy(
        update={"exporter_group": pipeline.settings.exporter_group + "-replay"}
    )
    stop = asyncio.Event()
    async with ExportClient(replay) as client:
        exporter = asyncio.create_task(run_exporter(replay, stop=stop))
        try:
            replayed = {rid: await client.wait(rid, within_s=120) for rid in answered}
        finally:
            stop.set()
            await exporter
    for rid, completion in replayed.items():
        original = answered[rid].data
        assert completion.data is not None
        assert original is not None
        assert (completion.data.filePath, completion.data.sha256, completion.data.recordCount) == (
            original.filePath,
            original.sha256,
            original.recordCount,
        )
    assert await csv_keys(pipeline.settings) == files_before
