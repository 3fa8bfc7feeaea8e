"""The exporter end to end on the real broker and store, cell by cell against the oracle.

One simulated dataset (a few thousand events: duplicates, late and invalid events, four
workspaces — BYOK, never-configured, turning private half-way, random) plus hand-made
events with hostile names is produced once per module and ingested by the real ingest
service. Every export type and subgroup is then requested through Kafka in five
timezones (UTC, Europe/Berlin across a DST change, Asia/Kolkata, Asia/Kathmandu,
America/St_Johns), downloaded through its signed URL, and compared byte for byte with
``tests.reference`` computed from the raw events. The closed months are merged and rolled
up first, so the exports of long windows (all types but agents) read the janitor's
roll-ups of the months they cover whole (and the facts of the rest): the compactor's
janitor is called directly for that (tests/integration/test_compactor.py runs the service).
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import hashlib
import io
import itertools
import json
import urllib.request
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
import pytest_asyncio

from services.compactor.janitor import Janitor, Sweep
from services.exporter.app import run_exporter
from services.ingest.app import run_ingest
from shared.adapters.export_client import ExportClient, export_request
from shared.adapters.s3 import S3ObjectStore
from shared.clock import system_clock
from shared.columnar.rollups import ROLLUP_KINDS, open_rollups, rollup_members
from shared.columnar.tables import TableStore
from shared.contracts.completions import ExportCompletion
from shared.contracts.export_formats import ExportFormat
from shared.embedded import ensure_infrastructure, isolated_settings
from shared.settings import Settings
from shared.simulation import SimConfig, simulate
from tests.clock import NOW
from tests.integration.conftest import InfraStack
from tests.integration.kafka_tools import produce, wait_until_committed
from tests.reference import (
    EventLog,
    RequestRejected,
    build_log,
    reference_csv_bytes,
    reference_export,
    reference_request,
    reference_typed_rows,
)

TODAY = NOW.date()
ORGS = ["ws-0001", "ws-0002", "ws-0003", "ws-0004"]
EDGE_ORG = "ws-edge"
EDGE_DAY = TODAY - timedelta(days=40)


@dataclass(frozen=True)
class Dataset:
    settings: Settings
    log: EventLog
    client: ExportClient


@asynccontextmanager
async def running_services(settings: Settings) -> AsyncIterator[None]:
    """Ingest and exporter in this process until the block ends."""
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(run_ingest(settings, stop=stop)),
        asyncio.create_task(run_exporter(settings, stop=stop)),
    ]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


def _event(kind: str, at: datetime, **fields: Any) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"edge-{uuid.uuid4().hex[:12]}",
            "type": kind,
            "org_id": EDGE_ORG,
            "occurred_at": at.isoformat(),
            **fields,
        }
    )


def edge_events() -> list[bytes]:
    """A BYOK workspace whose texts attack CSV quoting and spreadsheet formulas."""
    start = datetime.combine(EDGE_DAY, datetime.min.time(), UTC)
    names = [
        "Smith, John",
        'Renée "Rae"',
        "Line\nBreak",
        "=SUM(A1:A9)",
        "+49 Hotline",
        "-Dash",
        "@mention",
        "李小龍 🙂",
        "\tTabby",
        "\rReturn",
    ]
    events = [_event("workspace_settings", start - timedelta(days=5), byok=True)]
    for index, name in enumerate(names):
        user = f"edge-u{index}"
        events.append(
            _event(
                "user_upserted",
                start - timedelta(days=3),
                user_id=user,
                name=name,
                email=f"=u{index}@example.com",
                role="member",
                department="Sales, EMEA",
                payg_limit=10.5 * index,
            )
        )
        events.append(
            _event(
                "message",
                start + timedelta(hours=index),
                user_id=user,
                assistant_id="edge-a1",
                project_id="edge-p1",
                conversation_id=f"c{index % 3}",
                model="gpt-4.1",
                provider="openai",
                byok=index % 2 == 0,
                deployment="eu, west" if index % 2 == 0 else None,
                actions=["canvas", "=evil"],
                usage={
                    "prompt_tokens": 100 + index,
                    "completion_tokens": 7,
                    "cached_prompt_tokens": 3,
                    "cost_usd": 0.0000125,
                },
            )
        )
        events.append(
            _event("payg_consumption", start + timedelta(hours=index), user_id=user, amount=1.25)
        )
    events.append(
        _event(
            "user_upserted",
            start + timedelta(days=30),
            user_id="edge-u0",
            name="Renamed after the window",
        )
    )
    events.append(
        _event(
            "agent_upserted",
            start - timedelta(days=3),
            assistant_id="edge-a1",
            name="=IMPORTXML(A1)",
            description='Multi\nline "quoted", text',
            owner_email="-owner@example.com",
        )
    )
    events.append(
        _event(
            "project_upserted",
            start - timedelta(days=3),
            project_id="edge-p1",
            name="Due diligence\nAcme",
            owner_email="@owner",
        )
    )
    events.append(
        _event(
            "api_key_upserted",
            start - timedelta(days=3),
            api_key_id="edge-k1",
            name="=cmd|' /C calc'!A0",
        )
    )
    events.append(
        _event(
            "api_request",
            start + timedelta(hours=2),
            api_key_id="edge-k1",
            model="o3",
            provider="openai",
            requests=3,
            usage={"prompt_tokens": 10, "cost_usd": 1.5},
        )
    )
    return events


@pytest_asyncio.fixture(scope="module")
async def dataset(stack: InfraStack) -> AsyncIterator[Dataset]:
    settings = isolated_settings(stack.settings, "exp" + uuid.uuid4().hex[:10])
    await ensure_infrastructure(settings)
    records = list(
        simulate(
            SimConfig(
                seed=21,
                orgs=4,
                events=4000,
                dup_rate=0.05,
                late_rate=0.05,
                invalid_rate=0.01,
                end=NOW - timedelta(minutes=10),
            )
        )
    )
    values = [(record.key, record.value) for record in records]
    values += [(EDGE_ORG.encode(), value) for value in edge_events()]
    ends = await produce(settings, settings.topic_events, values)
    log = build_log([value for _, value in values], valid_at=NOW)
    assert log.duplicates > 0
    assert log.invalid > 0
    async with running_services(settings), ExportClient(settings) as client:
        await wait_until_committed(settings, settings.ingest_group, settings.topic_events, ends)
        await settle_janitor(settings)
        yield Dataset(settings=settings, log=log, client=client)


async def settle_janitor(settings: Settings) -> None:
    """Merge the closed months and roll them up, as the compactor does within
    ``USAGE_COMPACTION_INTERVAL_S`` of a commit (its janitor, called here): the exports of
    windows that cover whole months then read roll-ups from the store
    (``shared.columnar.rollups``)."""
    tables = TableStore.of(settings)
    async with S3ObjectStore(settings, settings.aggregates_bucket) as objects:
        janitor = Janitor(settings, objects, tables)
        for _ in range(20):  # a round refused by an ingest commit is tried again
            swept = await janitor.tidy([*ORGS, EDGE_ORG], NOW)
            if swept == Sweep(workspaces=swept.workspaces):
                break
    for org, kind in itertools.product(ORGS, ROLLUP_KINDS):
        uri = tables.uri(org, kind.table)
        options = dict(tables.options)
        rollups = await asyncio.to_thread(open_rollups, kind, uri, options, create=False)
        index = await asyncio.to_thread(rollup_members, kind, rollups)
        assert len(index) >= 10, org  # every closed month of the year, and their merge
        merged = [members for members in index.values() if len(members) > 1]
        assert merged, org
        assert len(merged[0]) >= 9, org


def last_dst_change() -> date:
    """The most recent last-Sunday-of-March/October (EU DST change) at least 10 days ago."""
    candidates = []
    for year in (TODAY.year - 1, TODAY.year):
        for month in (3, 10):
            last = date(year, month + 1, 1) - timedelta(days=1)
            candidates.append(last - timedelta(days=(last.weekday() + 1) % 7))
    return max(day for day in candidates if day <= TODAY - timedelta(days=10))


def back(days: int) -> str:
    return (TODAY - timedelta(days=days)).isoformat()


def windows() -> list[tuple[str, str, str, str]]:
    """(from, from zone, to, to zone): past windows, so ``now`` cannot change them."""
    dst = last_dst_change()
    return [
        (back(120), "UTC", back(90), "UTC"),
        (
            (dst - timedelta(days=6)).isoformat(),
            "Europe/Berlin",
            (dst + timedelta(days=6)).isoformat(),
            "Europe/Berlin",
        ),
        (back(200) + "T06:30:00", "Asia/Kolkata", back(150) + "T23:10:00.000Z", "Asia/Kolkata"),
        (back(60) + "T13:07:00", "Asia/Kathmandu", back(30), "Asia/Kathmandu"),
        (back(300), "America/St_Johns", back(1), "America/St_Johns"),
    ]


async def download(url: str) -> bytes:
    body, _ = await download_typed(url)
    return body


async def download_typed(url: str) -> tuple[bytes, str]:
    """The file behind a signed URL, and its ``Content-Type``."""

    def fetch() -> tuple[bytes, str]:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - test store URL
            body: bytes = response.read()
            assert response.headers.get("Content-Encoding") is None
            return body, str(response.headers.get("Content-Type"))

    return await asyncio.to_thread(fetch)


async def assert_matches_reference(data: Dataset, message: dict[str, Any]) -> int:
    """Request, download and compare with the oracle; returns the agreed status.

    The exporter reads its clock once, at some moment between sending and answering:
    a window that ends today is clamped to that moment's quarter hour. The answer
    must match the oracle at the moment the request was sent or at the moment it was
    answered (they differ only when a quarter hour ends in between).
    """
    sent = system_clock()
    completion = await data.client.request(message, within_s=120)
    answered = system_clock()
    try:
        return await assert_answer_matches(data, message, completion, now=sent)
    except AssertionError:
        if quarter_hour(sent) == quarter_hour(answered):
            raise
    return await assert_answer_matches(data, message, completion, now=answered)


def quarter_hour(moment: datetime) -> int:
    return int(moment.timestamp()) // 900


async def assert_answer_matches(
    data: Dataset, message: dict[str, Any], completion: ExportCompletion, *, now: datetime
) -> int:
    try:
        expected = reference_export(
            data.log,
            org_id=message["org_id"],
            data_type=message["data_type"],
            from_date=message["from"]["date"],
            from_tz=message["from"]["timezone"],
            to_date=message["to"]["date"],
            to_tz=message["to"]["timezone"],
            group_by=message["group_by"],
            now=now,
            bucket=message.get("bucket"),
        )
    except RequestRejected as rejected:
        expected_status = rejected.status
    else:
        expected_status = expected.status
    if expected_status == 400:
        assert completion.error is not None, completion
        assert completion.error.status == 400
        return 400
    if expected_status == 404:
        assert completion.error is not None, completion
        assert (completion.error.status, completion.error.error) == (404, "No data found")
        return 404
    assert completion.success, completion.error
    assert completion.data is not None
    body = await download(completion.data.downloadUrl)
    assert_cells_equal(body, expected.header, expected.rows)
    assert body == reference_csv_bytes(expected)
    assert completion.data.recordCount == len(expected.rows)
    assert completion.data.bytes == len(body)
    assert completion.data.sha256 == hashlib.sha256(body).hexdigest()
    assert completion.data.dateRange == expected.date_range
    assert completion.data.dataType == expected.data_type
    assert completion.data.filePath.endswith(
        f"-{expected.period_start}-{expected.period_end}-{message['request_id'][:8]}.csv"
    )
    return 200


def assert_cells_equal(body: bytes, header: list[str], rows: list[list[str]]) -> None:
    parsed = list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))
    assert parsed[0] == header
    assert len(parsed) - 1 == len(rows)
    for index, (mine, theirs) in enumerate(zip(parsed[1:], rows, strict=True)):
        assert dict(zip(header, mine, strict=True)) == dict(zip(header, theirs, strict=True)), (
            f"row {index}"
        )


TYPES_AND_GROUPS = [
    ("users", None),
    ("users", "model"),
    ("assistants", None),
    ("agents", "model"),
    ("api_keys", None),
    ("api_keys", "model"),
    ("projects", None),
    ("models", None),
    ("models", "source"),
    ("models", "deployment"),
]


@pytest.mark.parametrize(("data_type", "group_by"), TYPES_AND_GROUPS)
async def test_every_type_and_timezone_matches_the_reference(
    dataset: Dataset, data_type: str, group_by: str | None
) -> None:
    requests = []
    expected: list[int] = []
    for index, (start, start_zone, end, end_zone) in enumerate(windows()):
        for org in (ORGS[index % len(ORGS)], ORGS[(index + 2) % len(ORGS)]):
            message = export_request(
                org,
                data_type,
                start,
                end,
                timezone=start_zone,
                to_timezone=end_zone,
                group_by=group_by,
            )
            requests.append(assert_matches_reference(dataset, message))
            byok, _ = dataset.log.org(org).workspace_settings()
            expected.append(400 if group_by == "deployment" and not byok else 200)
    statuses = await asyncio.gather(*requests)
    # Every window of every workspace has rows, but a deployment grouping of a workspace
    # that is not BYOK is refused.
    assert statuses == expected


@pytest.mark.parametrize(("data_type", "group_by"), TYPES_AND_GROUPS)
async def test_hostile_names_are_quoted_and_guarded(
    dataset: Dataset, data_type: str, group_by: str | None
) -> None:
    start, end = (EDGE_DAY - timedelta(days=1)).isoformat(), (EDGE_DAY + timedelta(days=1))
    message = export_request(
        EDGE_ORG, data_type, start, end.isoformat(), timezone="Asia/Kathmandu", group_by=group_by
    )
    assert await assert_matches_reference(dataset, message) == 200


async def test_privacy_and_byok_shape_the_header(dataset: Dataset) -> None:
    start, end = (TODAY - timedelta(days=90)).isoformat(), (TODAY - timedelta(days=2))
    completions: dict[str, ExportCompletion] = {}
    for org in ("ws-0001", "ws-0002", "ws-0003"):
        message = export_request(org, "users", start, end.isoformat())
        assert await assert_matches_reference(dataset, message) == 200
        completions[org] = await dataset.client.request(message)  # answered from its record
    headers = {}
    for org, completion in completions.items():
        assert completion.data is not None
        body = await download(completion.data.downloadUrl)
        headers[org] = body.split(b"\r\n", 1)[0].decode().split(",")
    assert "total_cost_usd" in headers["ws-0001"]  # BYOK since a third of the year
    assert "name" in headers["ws-0001"]
    assert "total_cost_usd" not in headers["ws-0002"]  # never sent settings: defaults
    assert "name" not in headers["ws-0003"]  # turned user-level data off
    assert "email" not in headers["ws-0003"]


async def test_to_in_the_future_is_clamped(dataset: Dataset) -> None:
    message = export_request(
        "ws-0001",
        "models",
        (TODAY - timedelta(days=20)).isoformat(),
        (TODAY + timedelta(days=20)).isoformat(),
        timezone="Asia/Kolkata",
    )
    completion = await dataset.client.request(message)
    assert completion.data is not None
    clamped_to = datetime.fromisoformat(completion.data.dateRange["to"])
    assert NOW < clamped_to < system_clock() + timedelta(minutes=16)
    assert completion.data.dateRange["to"].endswith("+05:30")


@pytest.mark.parametrize("export_format", ["csv.gz", "parquet", "ndjson"])
async def test_every_format_holds_the_reference_rows(dataset: Dataset, export_format: str) -> None:
    """Through Kafka and the store: the file's name, type and bytes, then its rows typed
    as the contract says (``tests.reference.formats``), hostile names unguarded."""
    start, end = (EDGE_DAY - timedelta(days=1)).isoformat(), (EDGE_DAY + timedelta(days=1))
    cases = [
        ("ws-0001", "users", None, back(120), back(90)),
        ("ws-0001", "models", "deployment", back(120), back(90)),
        (EDGE_ORG, "assistants", None, start, end.isoformat()),
    ]
    for org, data_type, group_by, first, last in cases:
        message = export_request(
            org, data_type, first, last, group_by=group_by, export_format=export_format
        )
        completion = await dataset.client.request(message, within_s=120)
        assert completion.success, completion.error
        assert completion.data is not None
        expected = reference_request(dataset.log, message, now=system_clock())
        body, content_type = await download_typed(completion.data.downloadUrl)
        assert content_type == ExportFormat(export_format).content_type
        assert completion.data.format == export_format
        assert completion.data.filePath.endswith(f"-{message['request_id'][:8]}.{export_format}")
        assert completion.data.bytes == len(body)
        assert completion.data.sha256 == hashlib.sha256(body).hexdigest()
        assert completion.data.recordCount == len(expected.rows)
        if export_format == "csv.gz":
            assert gzip.decompress(body) == reference_csv_bytes(expected)
            continue
        if export_format == "parquet":
            rows = pq.read_table(io.BytesIO(body)).to_pylist()
        else:
            rows = [json.loads(line, parse_float=Decimal) for line in body.decode().splitlines()]
            dates = ("period_start", "period_end", "joined_at")
            rows = [
                {k: date.fromisoformat(v) if k in dates and v else v for k, v in row.items()}
                for row in rows
            ]
        assert rows == reference_typed_rows(expected), (org, data_type)


async def test_bucketed_exports_match_the_reference(dataset: Dataset) -> None:
    """Through Kafka and the store: days, weeks and months in three zones, over windows
    that cross merged month files, each compared cell for cell with the reference."""
    cases = [
        ("ws-0001", "users", None, back(100), back(60), "Europe/Berlin", "week"),
        ("ws-0002", "models", "source", back(45), back(30), "Asia/Kathmandu", "day"),
        ("ws-0001", "api_keys", "model", back(330), back(0), "America/St_Johns", "month"),
        ("ws-0003", "assistants", None, back(200), back(150), "UTC", "week"),
    ]
    messages = [
        export_request(org, data_type, first, last, timezone=zone, group_by=group_by, bucket=bucket)
        for org, data_type, group_by, first, last, zone, bucket in cases
    ]
    statuses = await asyncio.gather(*(assert_matches_reference(dataset, m) for m in messages))
    assert statuses == [200] * len(cases)
