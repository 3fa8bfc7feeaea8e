"""Month rollups on the real broker and store: exports through rollups are byte-identical
to exports read day by day (a second exporter with ``export_month_rollups=false``) and to
the oracle; a late event in a month that already has a rollup is counted in the next
export; a foreign or corrupt rollup is ignored and replaced.

Each test gets a stack of its own (topics, buckets, groups, services, data): a test
mutates its workspaces' rollups and events, so none may see another's, in any order.
Dates derive from the session's one clock (``tests.clock``)."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

import orjson
import pytest_asyncio

from services.exporter.app import run_exporter
from services.exporter.client import ExportClient, export_request
from services.ingest.app import run_ingest
from shared.adapters.s3 import ObjectStore
from shared.domain import keys
from shared.domain.window_plan import days_of_month
from shared.embedded import ensure_infrastructure, isolated_settings
from shared.settings import Settings
from shared.simulation import SimConfig, simulate
from shared.storage.rollups import decode_rollup, list_month_heads
from tests.clock import NOW, TODAY
from tests.integration.kafka_tools import produce, wait_until_committed
from tests.integration.test_exporter import Dataset, assert_matches_reference, download
from tests.reference import build_log

ORG, OTHER = "ws-0001", "ws-0002"
START, END = (TODAY - timedelta(days=200)).isoformat(), (TODAY - timedelta(days=1)).isoformat()
#: A month the window above covers whole: the late event goes there.
LATE_MONTH = (TODAY.replace(day=1) - timedelta(days=70)).replace(day=1)


@dataclass(frozen=True)
class Stack:
    with_rollups: Dataset
    day_by_day: ExportClient
    records: list[tuple[bytes | None, bytes]]


def without_rollups(settings: Settings) -> Settings:
    """The same data, a second exporter of its own that reads every day head."""
    topics = ("topic_export_requests", "topic_export_requests_dlq", "topic_export_completions")
    return settings.model_copy(
        update={name: f"{getattr(settings, name)}.heads" for name in topics}
        | {"exporter_group": f"{settings.exporter_group}-heads", "export_month_rollups": False}
    )


@asynccontextmanager
async def services(*settings: Settings) -> AsyncIterator[None]:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(run_ingest(settings[0], stop=stop))]
    tasks += [asyncio.create_task(run_exporter(each, stop=stop)) for each in settings]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


@pytest_asyncio.fixture
async def exports(settings: Settings) -> AsyncIterator[Stack]:
    settings = isolated_settings(settings, "roll" + uuid.uuid4().hex[:10])
    await ensure_infrastructure(settings)
    heads = without_rollups(settings)
    await ensure_infrastructure(heads)
    config = SimConfig(seed=5, orgs=2, events=3000, end=NOW - timedelta(minutes=10))
    records = [(record.key, record.value) for record in simulate(config)]
    ends = await produce(settings, settings.topic_events, records)
    async with (
        services(settings, heads),
        ExportClient(settings) as client,
        ExportClient(heads) as heads_client,
    ):
        await wait_until_committed(settings, settings.ingest_group, settings.topic_events, ends)
        log = build_log([value for _, value in records], valid_at=NOW)
        yield Stack(Dataset(settings, log, client), heads_client, records)


async def both_agree(stack: Stack, message: dict[str, Any]) -> bytes:
    """The export through rollups matches the oracle and the day-by-day export, byte for
    byte; returns the file."""
    fresh = message | {"request_id": str(uuid.uuid4())}  # a repeated id gets the old file
    assert await assert_matches_reference(stack.with_rollups, fresh) == 200
    mine = await stack.with_rollups.client.request(message | {"request_id": str(uuid.uuid4())})
    theirs = await stack.day_by_day.request(message | {"request_id": str(uuid.uuid4())})
    assert mine.data is not None, mine.error
    assert theirs.data is not None, theirs.error
    body = await download(mine.data.downloadUrl)
    assert body == await download(theirs.data.downloadUrl)
    return body


async def rollup_state(settings: Settings, org: str, month: date, part: str) -> str:
    """'fresh', 'stale' or 'missing' for the month's rollup of ``part`` right now."""
    async with ObjectStore(settings, settings.aggregates_bucket) as store:
        stored = await store.get(keys.month_rollup_key(org, month, part))
        if stored is None:
            return "missing"
        heads = await list_month_heads(store, org, month)
        body = decode_rollup(stored.body, org_id=org, month=month, part=part, heads=heads)
        return "stale" if body is None else "fresh"


EXPORTS = [
    ("users", None),
    ("users", "model"),
    ("assistants", None),
    ("assistants", "model"),
    ("api_keys", "model"),
    ("projects", None),
    ("models", "source"),
]


async def test_exports_through_rollups_equal_exports_day_by_day(exports: Stack) -> None:
    stack = exports
    settings = stack.with_rollups.settings
    assert await rollup_state(settings, ORG, LATE_MONTH, "users") == "missing"
    for data_type, group_by in EXPORTS:
        message = export_request(ORG, data_type, START, END, group_by=group_by)
        await both_agree(stack, message)  # the first one builds the rollups
        await both_agree(stack, message)  # later ones read them
    for part in ("users", "agents", "api_keys", "projects", "models"):
        assert await rollup_state(settings, ORG, LATE_MONTH, part) == "fresh", part
    # Non-UTC bounds: whole UTC days only come from rollups, the ends from facts.
    for zone in ("Europe/Berlin", "Asia/Kathmandu", "America/St_Johns"):
        message = export_request(ORG, "users", START, END, timezone=zone)
        await both_agree(stack, message)


async def test_a_late_event_in_a_rolled_up_month_is_counted(exports: Stack) -> None:
    stack = exports
    settings = stack.with_rollups.settings
    message = export_request(OTHER, "users", START, END)
    before = await both_agree(stack, message)
    assert await rollup_state(settings, OTHER, LATE_MONTH, "users") == "fresh"
    user = next(csv.DictReader(io.StringIO(before.decode())))["user_id"]  # the top user
    day = days_of_month(LATE_MONTH)[12]
    late = orjson.dumps(
        {
            "event_id": f"late-{uuid.uuid4().hex[:12]}",
            "type": "message",
            "org_id": OTHER,
            "occurred_at": f"{day.isoformat()}T10:00:00Z",
            "user_id": user,
            "model": "late-model",
            "provider": "openai",
            "usage": {"prompt_tokens": 11, "completion_tokens": 3},
        }
    )
    ends = await produce(settings, settings.topic_events, [(OTHER.encode(), late)])
    await wait_until_committed(settings, settings.ingest_group, settings.topic_events, ends)
    assert await rollup_state(settings, OTHER, LATE_MONTH, "users") == "stale"
    with_late = Stack(
        replace(
            stack.with_rollups,
            log=build_log([value for _, value in stack.records] + [late], valid_at=NOW),
        ),
        stack.day_by_day,
        stack.records,
    )
    after = await both_agree(with_late, message)
    assert b"late-model" in after
    assert b"late-model" not in before
    assert await rollup_state(settings, OTHER, LATE_MONTH, "users") == "fresh"


async def test_a_foreign_or_corrupt_rollup_is_ignored_and_replaced(exports: Stack) -> None:
    stack = exports
    settings = stack.with_rollups.settings
    for org in (ORG, OTHER):
        await both_agree(stack, export_request(org, "projects", START, END))
    async with ObjectStore(settings, settings.aggregates_bucket) as store:
        foreign = await store.get(keys.month_rollup_key(OTHER, LATE_MONTH, "projects"))
        assert foreign is not None
        mine = keys.month_rollup_key(ORG, LATE_MONTH, "projects")
        await store.put(mine, foreign.body)
        assert await rollup_state(settings, ORG, LATE_MONTH, "projects") == "stale"
        await both_agree(stack, export_request(ORG, "projects", START, END))
        assert await rollup_state(settings, ORG, LATE_MONTH, "projects") == "fresh"
        stored = await store.get(mine)
        assert stored is not None
        header, _, body = stored.body.partition(b"\n")
        await store.put(mine, header + b"\n" + body.replace(b":", b":1", 1))
        assert await rollup_state(settings, ORG, LATE_MONTH, "projects") == "stale"
        await both_agree(stack, export_request(ORG, "projects", START, END))
        assert await rollup_state(settings, ORG, LATE_MONTH, "projects") == "fresh"
