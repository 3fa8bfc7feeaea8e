"""Events on the window's edges, end to end: the real broker, ingest, store and exporter.

The unit tier (``tests/unit/test_export_edges.py``) compares production's in-process path
with the oracle on every edge case; this module sends a chosen subset through Kafka and
S3: zones with a DST change at local midnight (America/Santiago), +12:45/+13:45
(Pacific/Chatham), 30-minute DST (Australia/Lord_Howe) and +05:45 (Asia/Kathmandu), each
with events at bound - 1 ms and at bound of the local days around its offset changes and
of the 12-month edge. Each CSV must equal the oracle's byte for byte, and the users with
messages in it must be exactly those whose events lie inside the bounds.
"""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pytest_asyncio

from shared.adapters.export_client import ExportClient, export_request
from shared.clock import system_clock
from shared.embedded import ensure_infrastructure, isolated_settings
from tests.clock import NOW
from tests.integration.conftest import InfraStack
from tests.integration.kafka_tools import produce, wait_until_committed
from tests.integration.test_exporter import (
    Dataset,
    assert_matches_reference,
    download,
    running_services,
)
from tests.reference import build_log
from tests.unit.window_edges import (
    EdgeEvent,
    EdgeWindow,
    edge_events,
    edge_windows,
    instants_of,
    users_inside,
)

ZONES = ["America/Santiago", "Pacific/Chatham", "Australia/Lord_Howe", "Asia/Kathmandu"]


@dataclass(frozen=True)
class ZoneData:
    org_id: str
    windows: list[EdgeWindow]
    events: list[EdgeEvent]


@dataclass(frozen=True)
class EdgeData:
    dataset: Dataset
    zones: dict[str, ZoneData]


def chosen(windows: list[EdgeWindow]) -> list[EdgeWindow]:
    """The 12-month edge, the local days either side of each change, a mixed-zone one."""
    keep = {"12m", "12m-1", "mixed", "dst-span", "dst-wall"}
    return [window for window in windows if window.label in keep]


@pytest_asyncio.fixture(scope="module")
async def edges(stack: InfraStack) -> AsyncIterator[EdgeData]:
    settings = isolated_settings(stack.settings, "edg" + uuid.uuid4().hex[:10])
    await ensure_infrastructure(settings)
    zones: dict[str, ZoneData] = {}
    values: list[tuple[bytes, bytes]] = []
    for index, zone in enumerate(ZONES):
        org_id = f"ws-edge-{index}"
        windows, changes = edge_windows(zone, NOW)
        instants = [ms for window in windows for ms in instants_of(window, changes)]
        events = edge_events(org_id, instants, now=NOW)
        zones[zone] = ZoneData(org_id, chosen(windows), events)
        values += [(org_id.encode(), event.value()) for event in events]
    ends = await produce(settings, settings.topic_events, values)
    log = build_log([value for _, value in values], valid_at=NOW)
    assert log.invalid == 0
    async with running_services(settings), ExportClient(settings) as client:
        await wait_until_committed(settings, settings.ingest_group, settings.topic_events, ends)
        yield EdgeData(Dataset(settings=settings, log=log, client=client), zones)


def local_day_ended(timezone: str) -> bool:
    """Whether the local date in ``timezone`` is no longer the one of ``NOW`` (the
    exporter keeps the real clock: a window on the 12-month edge, built from ``NOW``, is
    refused once that zone's day is over, as the reference agrees)."""
    zone = ZoneInfo(timezone)
    return system_clock().astimezone(zone).date() != NOW.astimezone(zone).date()


async def check_window(edges: EdgeData, zone: str, window: EdgeWindow) -> None:
    data = edges.zones[zone]
    for data_type, group_by in (("users", None), ("models", "deployment"), ("api_keys", None)):
        message = export_request(
            data.org_id,
            data_type,
            window.from_date,
            window.to_date,
            timezone=window.from_tz,
            to_timezone=window.to_tz,
            group_by=group_by,
        )
        status = await assert_matches_reference(edges.dataset, message)
        context = f"{zone} {window} {data_type} at now={NOW.isoformat()}"
        if window.label == "12m" and status == 400 and local_day_ended(window.from_tz):
            continue  # the zone's day ended since NOW: the 12-month edge moved past it
        if window.label == "12m-1":
            assert status == 400, context
            continue
        assert status == 200, context
        if data_type != "users" or window.label == "12m":
            continue  # the 12-month edge moves if a local day ends during the run
        completion = await edges.dataset.client.request(message)  # answered from its record
        assert completion.data is not None, context
        body = await download(completion.data.downloadUrl)
        rows = list(csv.DictReader(io.StringIO(body.decode("utf-8"), newline="")))
        listed = {row["user_id"] for row in rows if row["messages_total"] != "0"}
        start, end = window.bounds_ms()
        assert listed == users_inside(data.events, start, end), context
        on_start = {event.user_id for event in data.events if event.ms == start}
        on_end = {event.user_id for event in data.events if event.ms == end}
        assert on_start, context
        assert on_end, context
        assert on_start <= listed, context
        assert not on_end & listed, context


async def test_events_on_the_bounds_match_the_reference_end_to_end(edges: EdgeData) -> None:
    checks = [
        check_window(edges, zone, window)
        for zone, data in edges.zones.items()
        for window in data.windows
    ]
    assert len(checks) >= 4 * len(ZONES)
    await asyncio.gather(*checks)
