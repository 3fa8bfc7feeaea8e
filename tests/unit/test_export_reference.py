"""The exports (each type's query, as the exporter runs it) against the independent
oracle, without broker or store.

Simulated raw events go through ingest's own decoder (``decode_batch``: the FACTS rows
and dimension versions of storage format 2), deduplicated by ``event_id`` as ingest's
writer does, into in-memory Arrow tables; the exporter's own functions then answer
(``settings_of``, ``check_workspace_options``, ``query_export`` over the facts columns
the exporter reads). Every cell, and the file's bytes, must equal what
``tests.reference`` computes from the raw events.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from services.exporter.export_job import query_export, settings_of
from services.ingest.decode import decode_batch
from services.ingest.validation import AcceptedRange
from shared.columnar.schema import DIMENSIONS, FACTS, DimensionVersion, dimensions_table
from shared.contracts.export_types import spec
from shared.domain.export.request_validation import (
    ReadableRequest,
    ValidRequest,
    check_workspace_options,
    validate_request,
)
from shared.simulation import SimConfig, simulate
from tests.reference import (
    EventLog,
    RequestRejected,
    build_log,
    reference_csv_bytes,
    reference_export,
)

NOW = datetime(2026, 11, 20, 12, 7, 31, tzinfo=UTC)


@dataclass(frozen=True)
class Workspace:
    """One workspace's state as ingest stores it: one row per accepted event."""

    facts: pa.Table  # FACTS
    dimensions: pa.Table  # DIMENSIONS

    @classmethod
    def empty(cls) -> Workspace:
        return cls(FACTS.empty_table(), DIMENSIONS.empty_table())


@dataclass
class Stream:
    orgs: dict[str, Workspace]
    log: EventLog


def ingest_in_memory(values: list[bytes], *, now: datetime = NOW) -> dict[str, Workspace]:
    """Decode as ingest does; keep the first fact and the first dimension version of each
    ``event_id`` per workspace (ingest dedups facts and dimensions each by their own ids)."""
    batch = decode_batch(values, AcceptedRange.at(now), max_bytes=1024 * 1024)
    seen: set[tuple[str, str, str]] = set()
    keep: list[bool] = []
    orgs = batch.facts.column("org_id").to_pylist()
    for org_id, event_id in zip(orgs, batch.facts.column("event_id").to_pylist(), strict=True):
        key = ("facts", org_id, event_id)
        keep.append(key not in seen)
        seen.add(key)
    facts = batch.facts.filter(pa.array(keep, pa.bool_()))
    versions: dict[str, list[DimensionVersion]] = {}
    for _, org_id, version in batch.dimensions:
        key = ("dimensions", org_id, version[3])
        if key not in seen:
            seen.add(key)
            versions.setdefault(org_id, []).append(version)
    workspaces = {}
    for org_id in sorted(set(orgs) | set(versions)):
        mine = facts.filter(pc.equal(facts.column("org_id"), org_id))
        workspaces[org_id] = Workspace(mine, dimensions_table(org_id, versions.get(org_id, [])))
    return workspaces


@pytest.fixture(scope="module")
def stream() -> Stream:
    config = SimConfig(
        seed=11,
        orgs=4,
        events=6000,
        invalid_rate=0.02,
        late_rate=0.05,
        end=NOW - timedelta(hours=1),
    )
    values = [record.value for record in simulate(config)]
    return Stream(orgs=ingest_in_memory(values), log=build_log(values, valid_at=NOW))


@dataclass(frozen=True)
class Ours:
    """What the exporter answers: a status, and for a 200 the file (header and rows)."""

    status: int
    data: bytes = b""

    @property
    def header(self) -> list[str]:
        return self.cells()[0] if self.data else []

    @property
    def rows(self) -> list[list[str]]:
        return self.cells()[1:] if self.data else []

    def cells(self) -> list[list[str]]:
        return list(csv.reader(io.StringIO(self.data.decode("utf-8"), newline="")))


def our_export(workspace: Workspace, request: ValidRequest) -> Ours:
    """The exporter's answer from the workspace's tables (as ``Exporter._export``)."""
    options = settings_of(workspace.dimensions)
    rejected = check_workspace_options(request, options)
    if rejected is not None:
        return Ours(rejected.status)
    facts = workspace.facts.select(list(spec(request.data_type).facts_columns))
    export = query_export(request, facts, workspace.dimensions, options)
    return Ours(200, export.data) if export.rows else Ours(404)


def compare(stream: Stream, payload: dict[str, Any], *, now: datetime = NOW) -> int:
    """Assert our export equals the oracle's; returns the status both agree on."""
    readable = ReadableRequest(request_id="r-1", org_id=payload["org_id"], payload=payload)
    validated = validate_request(readable, now=now)
    workspace = stream.orgs.get(payload["org_id"]) or Workspace.empty()
    try:
        expected = reference_export(
            stream.log,
            org_id=payload["org_id"],
            data_type=payload["data_type"],
            from_date=payload["from"]["date"],
            from_tz=payload["from"]["timezone"],
            to_date=payload["to"]["date"],
            to_tz=payload["to"]["timezone"],
            group_by=payload.get("group_by"),
            now=now,
            bucket=payload.get("bucket"),
        )
    except RequestRejected as exc:
        rejected_status: int | None = exc.status
    else:
        rejected_status = None
    if rejected_status is not None:
        status = (
            validated.status
            if not isinstance(validated, ValidRequest)
            else our_export(workspace, validated).status
        )
        assert status == rejected_status == 400
        return 400
    assert isinstance(validated, ValidRequest), validated
    assert validated.window.date_range() == expected.date_range
    ours = our_export(workspace, validated)
    assert ours.status == expected.status
    if ours.status != 200:
        return ours.status
    header, rows = ours.header, ours.rows
    assert header == expected.header
    assert len(rows) == len(expected.rows)
    for index, (mine, theirs) in enumerate(zip(rows, expected.rows, strict=True)):
        assert dict(zip(header, mine, strict=True)) == dict(zip(header, theirs, strict=True)), (
            f"row {index}"
        )
    assert ours.data == reference_csv_bytes(expected)
    return ours.status


def request(
    org: str, data_type: str, start: str, end: str, zone: str = "UTC", group_by: str | None = None
) -> dict[str, Any]:
    return {
        "org_id": org,
        "data_type": data_type,
        "group_by": group_by,
        "from": {"date": start, "timezone": zone},
        "to": {"date": end, "timezone": zone},
    }


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
WINDOWS = [
    ("2026-01-01", "2026-01-31", "UTC"),
    ("2026-03-20", "2026-04-05", "Europe/Berlin"),  # across the spring DST change
    ("2025-12-01", "2026-11-20", "Asia/Kolkata"),  # to clamped to now
    ("2026-10-20T06:30:00", "2026-10-26T13:15:00.000Z", "Asia/Kathmandu"),
    ("2026-02-01", "2026-06-30", "America/St_Johns"),
]


@pytest.mark.parametrize(("data_type", "group_by"), TYPES_AND_GROUPS)
@pytest.mark.parametrize("org", ["ws-0001", "ws-0002", "ws-0003", "ws-0004"])
def test_every_type_matches_the_reference(
    stream: Stream, org: str, data_type: str, group_by: str | None
) -> None:
    statuses = [
        compare(stream, request(org, data_type, start, end, zone, group_by))
        for start, end, zone in WINDOWS
    ]
    # Every window of every workspace has rows (200), except a deployment grouping of a
    # workspace that is not BYOK, which both refuse (400).
    byok, _ = stream.log.org(org).workspace_settings()
    refused = group_by == "deployment" and not byok
    assert statuses == [400 if refused else 200] * len(WINDOWS)
