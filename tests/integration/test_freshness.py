"""``ingestedThrough`` on the real broker and store (contract §4): an export taken while
ingest lags reports an instant before the lagging events and does not count them; one
taken after ingest caught up reports an instant after them and counts them."""

from __future__ import annotations

import asyncio
import csv
import io
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import orjson
from aiokafka import TopicPartition

from services.exporter.app import run_exporter
from services.ingest.app import run_ingest
from shared.adapters.export_client import ExportClient, export_request
from shared.adapters.kafka import make_consumer
from shared.adapters.kafka_offsets import timestamp_at
from shared.contracts.completions import ExportCompletion
from shared.settings import Settings
from tests.clock import NOW, TODAY
from tests.integration.conftest import FreshSettingsFactory
from tests.integration.kafka_tools import produce, wait_until_committed

ORG = "ws-fresh"
DAY = NOW - timedelta(days=3)

Runner = Callable[..., Coroutine[Any, Any, object]]


@asynccontextmanager
async def running(runner: Runner, settings: Settings) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task: asyncio.Task[object] = asyncio.create_task(runner(settings, stop=stop))
    try:
        yield
    finally:
        stop.set()
        await task


def messages(user: str, count: int) -> list[tuple[bytes, bytes]]:
    return [
        (
            ORG.encode(),
            orjson.dumps(
                {
                    "event_id": f"{user}-{uuid.uuid4().hex[:12]}",
                    "type": "message",
                    "org_id": ORG,
                    "occurred_at": (DAY + timedelta(minutes=index)).isoformat(),
                    "user_id": user,
                    "model": "m-1",
                    "provider": "p-1",
                }
            ),
        )
        for index in range(count)
    ]


async def appended_ms(
    settings: Settings, starts: dict[int, int], ends: dict[int, int]
) -> list[int]:
    """The broker's timestamps of the records at ``starts..ends`` of each partition."""
    reader = make_consumer(settings, group_id=None)
    await reader.start()
    try:
        partitions = [TopicPartition(settings.topic_events, p) for p in ends]
        reader.assign(partitions)
        found = []
        for tp in partitions:
            for offset in range(starts.get(tp.partition, 0), ends[tp.partition]):
                stamp = await timestamp_at(reader, tp, offset)
                assert stamp is not None
                found.append(stamp)
        return found
    finally:
        await reader.stop()


async def users_of(client: ExportClient) -> tuple[ExportCompletion, dict[str, str]]:
    """A users export of the last week: its completion, and messages per user."""
    first = (TODAY - timedelta(days=7)).isoformat()
    completion = await client.request(export_request(ORG, "users", first, TODAY.isoformat()))
    assert completion.success, completion.error
    assert completion.data is not None
    with urllib.request.urlopen(completion.data.downloadUrl, timeout=30) as response:  # noqa: S310
        rows = list(csv.DictReader(io.StringIO(response.read().decode())))
    return completion, {row["user_id"]: row["messages_total"] for row in rows}


def instant_ms(completion: ExportCompletion) -> int:
    assert completion.data is not None
    text = completion.data.ingestedThrough
    assert text is not None
    assert text.endswith("Z")
    return int(datetime.fromisoformat(text).timestamp() * 1000)


async def test_ingested_through_is_before_what_ingest_has_not_read(
    make_fresh_settings: FreshSettingsFactory,
) -> None:
    settings = await make_fresh_settings(events_partitions=2)
    early = await produce(settings, settings.topic_events, messages("early", 5))
    async with running(run_ingest, settings):
        await wait_until_committed(settings, settings.ingest_group, settings.topic_events, early)
    # Ingest is down: these wait in the topic.
    late = await produce(settings, settings.topic_events, messages("late", 4))
    late_at = await appended_ms(settings, early, late)
    async with running(run_exporter, settings), ExportClient(settings) as client:
        lagging, counted = await users_of(client)
        assert counted == {"early": "5"}
        assert instant_ms(lagging) <= min(late_at)
        async with running(run_ingest, settings):
            await wait_until_committed(settings, settings.ingest_group, settings.topic_events, late)
            caught_up, counted = await users_of(client)
    assert counted == {"early": "5", "late": "4"}
    assert instant_ms(caught_up) > max(late_at)
