"""Exports whose events sit exactly on the window's edges, against the oracle.

For each timezone case (UTC, +05:30, +05:45, southern hemisphere, DST changes at local
midnight, Chatham's +12:45/+13:45, Lord Howe's 30-minute DST, …) the windows of
``tests.unit.window_edges`` — every local day around each offset change of the last 12
months, the 12-month edge, an ordinary day, a window ending in another zone — get events
at bound - 1 ms and at bound at both ends (and around each change). Production's
in-process path (ingest's decoder into facts and dimension tables, the exporter's query
of each type) must equal the oracle cell by cell and byte for byte, and the users listed
must be exactly those whose message lies in the window as the standard library resolves
it.

"Now" is read once from the one clock, so the windows follow the date the suite runs on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from shared.domain.export.request_validation import ReadableRequest, ValidRequest, validate_request
from tests.clock import NOW
from tests.reference import build_log, reference_export
from tests.unit.test_export_reference import (
    TYPES_AND_GROUPS,
    Stream,
    Workspace,
    compare,
    ingest_in_memory,
    our_export,
)
from tests.unit.window_edges import (
    DST_ZONES,
    EDGE_ZONES,
    EdgeEvent,
    EdgeWindow,
    edge_events,
    edge_windows,
    instants_of,
    users_inside,
)


@dataclass
class ZoneCase:
    zone: str
    org_id: str
    windows: list[EdgeWindow]
    changes: list[int]
    events: list[EdgeEvent]
    stream: Stream


def zone_case(zone: str, index: int) -> ZoneCase:
    org_id = f"ws-edge-{index:02d}"
    windows, changes = edge_windows(zone, NOW)
    instants = [ms for window in windows for ms in instants_of(window, changes)]
    events = edge_events(org_id, instants, now=NOW)
    values = [event.value() for event in events]
    stream = Stream(orgs=ingest_in_memory(values, now=NOW), log=build_log(values, valid_at=NOW))
    return ZoneCase(zone, org_id, windows, changes, events, stream)


def payload(case: ZoneCase, window: EdgeWindow, data_type: str, group_by: str | None) -> Any:
    return {
        "org_id": case.org_id,
        "data_type": data_type,
        "group_by": group_by,
        "from": {"date": window.from_date, "timezone": window.from_tz},
        "to": {"date": window.to_date, "timezone": window.to_tz},
    }


@pytest.mark.parametrize(("zone", "why"), EDGE_ZONES, ids=[zone for zone, _ in EDGE_ZONES])
def test_events_on_the_bounds_match_the_reference(zone: str, why: str) -> None:
    case = zone_case(zone, [name for name, _ in EDGE_ZONES].index(zone))
    context = f"{zone} ({why}) at now={NOW.isoformat()}"
    if zone in DST_ZONES:
        # Two changes a year; the scan spans 12 months less three days at each end.
        assert len(case.changes) in (1, 2), f"{context}: expected offset changes"
    else:
        assert case.changes == [], context
    for window in case.windows:
        statuses = {}
        for data_type, group_by in TYPES_AND_GROUPS:
            status = compare(case.stream, payload(case, window, data_type, group_by), now=NOW)
            statuses[data_type, group_by] = status
        # Each window holds events of every kind (a BYOK workspace): every export has
        # rows, but a window starting more than 12 months back is refused.
        expected = 400 if window.label == "12m-1" else 200
        assert statuses == dict.fromkeys(statuses, expected), f"{context} {window}"


@pytest.mark.parametrize(("zone", "why"), EDGE_ZONES, ids=[zone for zone, _ in EDGE_ZONES])
def test_exactly_the_users_inside_the_bounds_are_listed(zone: str, why: str) -> None:
    case = zone_case(zone, [name for name, _ in EDGE_ZONES].index(zone))
    for window in case.windows:
        if window.label == "12m-1":
            continue  # rejected: more than 12 months back
        context = f"{zone} ({why}) {window} at now={NOW.isoformat()}"
        start, end = window.bounds_ms()
        readable = ReadableRequest(
            request_id="r-1", org_id=case.org_id, payload=payload(case, window, "users", None)
        )
        validated = validate_request(readable, now=NOW)
        assert isinstance(validated, ValidRequest), context
        assert (validated.window.start_ms, validated.window.end_ms) == (start, end), context
        ours = our_export(case.stream.orgs.get(case.org_id) or Workspace.empty(), validated)
        listed = active_users(ours.header, ours.rows)
        expected = users_inside(case.events, start, end)
        # Bound - 1 ms is outside, bound inside at the start; the other way at the end.
        on_start = {event.user_id for event in case.events if event.ms == start}
        on_end = {event.user_id for event in case.events if event.ms == end}
        assert on_start, context
        assert on_end, context
        assert on_start <= expected, context
        assert not on_end & expected, context
        assert listed == expected, context
        assert ours.status == 200, context
        theirs = reference_export(
            case.stream.log,
            org_id=case.org_id,
            data_type="users",
            from_date=window.from_date,
            from_tz=window.from_tz,
            to_date=window.to_date,
            to_tz=window.to_tz,
            now=NOW,
        )
        assert active_users(theirs.header, theirs.rows) == expected, context


def active_users(header: list[str], rows: list[list[str]]) -> set[str]:
    """Users with a message in the window (the export also lists the idle known ones)."""
    user, total = header.index("user_id"), header.index("messages_total")
    return {row[user] for row in rows if row[total] != "0"}
