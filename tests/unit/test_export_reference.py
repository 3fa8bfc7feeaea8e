"""The row builders against the independent oracle, without broker or store.

Simulated raw events go through ingest's own validation and fact/dimension extraction
into memory; the export's aggregate is folded from the facts inside the window. Every
cell must equal what ``tests.reference`` computes from the raw events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.exporter.request_validation import (
    ReadableRequest,
    ValidRequest,
    check_workspace_options,
    validate_request,
)
from services.ingest.validation import AcceptedRange, Rejected, to_fact, validate_record
from shared.domain.aggregate import Aggregate
from shared.domain.dimensions import DimensionHistory, dimension_update, occurred_ms
from shared.domain.export.cells import guard
from shared.domain.export.context import ExportInputs, WorkspaceOptions
from shared.domain.export.table import build_table
from shared.domain.facts import EVENT_ID, TS, Fact
from shared.simulation import SimConfig, simulate
from tests.reference import EventLog, RequestRejected, build_log, reference_export

NOW = datetime(2026, 11, 20, 12, 7, 31, tzinfo=UTC)


@dataclass
class OrgState:
    facts: list[Fact] = field(default_factory=list)
    dims: dict[str, DimensionHistory] = field(default_factory=dict)


@dataclass
class Stream:
    orgs: dict[str, OrgState]
    log: EventLog


def ingest_in_memory(values: list[bytes], *, now: datetime = NOW) -> dict[str, OrgState]:
    accepted = AcceptedRange.at(now)
    orgs: dict[str, OrgState] = {}
    seen: set[tuple[str, str]] = set()
    for value in values:
        event = validate_record(value, accepted, max_bytes=1024 * 1024)
        if isinstance(event, Rejected):
            continue
        org = orgs.setdefault(event.org_id, OrgState())
        fact = to_fact(event)
        if fact is None:
            kind, entity, attributes = dimension_update(event)  # type: ignore[arg-type]
            history = org.dims.setdefault(kind, DimensionHistory())
            history.add(entity, occurred_ms(event), event.event_id, attributes)  # type: ignore[arg-type]
        elif (event.org_id, fact[EVENT_ID]) not in seen:
            seen.add((event.org_id, fact[EVENT_ID]))
            org.facts.append(fact)
    return orgs


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


def our_rows(stream: Stream, request: ValidRequest) -> tuple[int, list[str], list[list[str]]]:
    org = stream.orgs.get(request.org_id, OrgState())
    settings = org.dims.get("settings") or DimensionHistory()
    options = WorkspaceOptions.latest(settings)
    rejected = check_workspace_options(request, options)
    if rejected is not None:
        return rejected.status, [], []
    aggregate = Aggregate()
    for fact in org.facts:
        if request.window.contains(fact[TS]):
            aggregate.add(fact)
    inputs = ExportInputs(
        org_id=request.org_id,
        data_type=request.data_type,
        group_by=request.group_by,
        period_start=request.window.period_start().isoformat(),
        period_end=request.window.period_end().isoformat(),
        end_ms=request.window.end_ms,
        aggregate=aggregate,
        options=options,
        dims=org.dims,
    )
    table = build_table(inputs)
    rows = [[guard(cell) for cell in row] for row in table.rows()]
    return (200 if rows else 404), table.header, rows


def compare(stream: Stream, payload: dict[str, Any], *, now: datetime = NOW) -> int:
    """Assert our export equals the oracle's; returns the status both agree on."""
    readable = ReadableRequest(request_id="r-1", org_id=payload["org_id"], payload=payload)
    validated = validate_request(readable, now=now)
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
        )
    except RequestRejected as exc:
        rejected_status: int | None = exc.status
    else:
        rejected_status = None
    if rejected_status is not None:
        status = (
            validated.status
            if not isinstance(validated, ValidRequest)
            else our_rows(stream, validated)[0]
        )
        assert status == rejected_status == 400
        return 400
    assert isinstance(validated, ValidRequest), validated
    assert validated.window.date_range() == expected.date_range
    status, header, rows = our_rows(stream, validated)
    assert status == expected.status
    assert header == expected.header
    assert len(rows) == len(expected.rows)
    for index, (mine, theirs) in enumerate(zip(rows, expected.rows, strict=True)):
        assert dict(zip(header, mine, strict=True)) == dict(zip(header, theirs, strict=True)), (
            f"row {index}"
        )
    return status


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
