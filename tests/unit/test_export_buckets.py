"""Time buckets (contract §3, ``bucket``): the window cut into local days, ISO weeks or
months of the ``from`` timezone, exact to the quarter hour and clipped to the window; a
bucketed export equals the independent reference (each bucket the export of its part of
the window with attributes at the window's end, rows without activity left out), and its
additive columns add up, entity by entity, to the same export without buckets."""

from __future__ import annotations

import io
import itertools
import json
from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq
import pytest

from shared.contracts.export_buckets import MAX_BUCKETS, BucketUnit
from shared.contracts.export_types import DataType, spec
from shared.domain.buckets import Bucket, buckets
from shared.domain.export.cell_kinds import CellKind, cell_kind
from shared.domain.export.request_validation import (
    ReadableRequest,
    Rejected,
    ValidRequest,
    validate_request,
)
from shared.domain.window import (
    DAY_MS,
    QUARTER_MS,
    Window,
    WindowError,
    format_instant,
    local_day_start_ms,
    resolve_window,
)
from tests.unit.test_export_formats import export_bytes
from tests.unit.test_export_reference import (
    NOW,
    TYPES_AND_GROUPS,
    Ours,
    Stream,
    compare,
    request,
)
from tests.unit.test_export_reference import stream as stream  # the fixture, re-exported

#: (from, to, zone, bucket): days across a DST change, quarter-hour bounds in a +05:45 zone,
#: ISO weeks in a -03:30 zone, months over a year clamped to now.
BUCKETED = [
    ("2026-03-20", "2026-04-05", "Europe/Berlin", "day"),
    ("2026-10-20T06:30:00", "2026-10-26T13:15:00", "Asia/Kathmandu", "day"),
    ("2026-02-01", "2026-06-30", "America/St_Johns", "week"),
    ("2025-12-01", "2026-11-20", "Asia/Kolkata", "month"),
]


def readable(payload: dict[str, Any]) -> ReadableRequest:
    return ReadableRequest(request_id="r-1", org_id=payload["org_id"], payload=payload)


def window_of(start: str, end: str, zone: str) -> Window:
    return resolve_window(start, zone, end, zone, now=NOW)


def spans(cut: list[Bucket], zone: str) -> list[tuple[str, str, str, str]]:
    tz = ZoneInfo(zone)
    return [
        (
            format_instant(b.start_ms, tz),
            format_instant(b.end_ms, tz),
            b.first_day.isoformat(),
            b.last_day.isoformat(),
        )
        for b in cut
    ]


def test_days_are_local_days_clipped_to_the_window() -> None:
    window = window_of("2026-03-28T10:20", "2026-03-30T05:00", "Europe/Berlin")
    cut = buckets(window, BucketUnit.DAY)
    assert spans(cut, "Europe/Berlin") == [
        ("2026-03-28T10:15:00.000+01:00", "2026-03-29T00:00:00.000+01:00",
         "2026-03-28", "2026-03-28"),
        # the spring change: a day of 23 hours
        ("2026-03-29T00:00:00.000+01:00", "2026-03-30T00:00:00.000+02:00",
         "2026-03-29", "2026-03-29"),
        ("2026-03-30T00:00:00.000+02:00", "2026-03-30T05:15:00.000+02:00",
         "2026-03-30", "2026-03-30"),
    ]  # fmt: skip
    assert cut[1].end_ms - cut[1].start_ms == DAY_MS - 3_600_000


def test_weeks_run_monday_to_sunday_and_months_are_calendar_months() -> None:
    weeks = buckets(window_of("2026-06-03", "2026-06-20", "UTC"), BucketUnit.WEEK)
    assert [(b.first_day, b.last_day) for b in weeks] == [
        (date(2026, 6, 3), date(2026, 6, 7)),  # Wednesday, clipped, to Sunday
        (date(2026, 6, 8), date(2026, 6, 14)),
        (date(2026, 6, 15), date(2026, 6, 20)),  # to the window's last day, a Saturday
    ]
    months = buckets(window_of("2025-12-15", "2026-02-10", "Asia/Kolkata"), BucketUnit.MONTH)
    assert [(b.first_day, b.last_day) for b in months] == [
        (date(2025, 12, 15), date(2025, 12, 31)),
        (date(2026, 1, 1), date(2026, 1, 31)),
        (date(2026, 2, 1), date(2026, 2, 10)),
    ]
    kolkata = ZoneInfo("Asia/Kolkata")
    assert months[1].start_ms == local_day_start_ms(date(2026, 1, 1), kolkata)  # 18:30 UTC


@pytest.mark.parametrize(
    ("zone", "start", "end"),
    [
        ("America/Santiago", "2026-08-30", "2026-09-12"),  # spring change skips midnight
        ("America/Havana", "2026-03-01", "2026-03-20"),
        ("Australia/Lord_Howe", "2026-03-20", "2026-04-15"),  # a half-hour change
        ("Asia/Kathmandu", "2026-10-20T06:40", "2026-10-26T13:10"),
        ("Pacific/Kiritimati", "2025-11-21", "2026-11-20"),  # +14:00, a year of days
    ],
)
@pytest.mark.parametrize("unit", list(BucketUnit))
def test_buckets_tile_the_window_on_quarter_hours(
    zone: str, start: str, end: str, unit: BucketUnit
) -> None:
    window = window_of(start, end, zone)
    cut = buckets(window, unit)
    assert cut[0].start_ms == window.start_ms
    assert cut[-1].end_ms == window.end_ms
    for before, after in itertools.pairwise(cut):
        assert before.end_ms == after.start_ms
        assert after.first_day > before.last_day
    for bucket in cut:
        assert bucket.start_ms < bucket.end_ms
        assert bucket.start_ms % QUARTER_MS == 0
        assert bucket.end_ms % QUARTER_MS == 0
        assert bucket.first_day <= bucket.last_day


def test_more_than_the_maximum_of_buckets_is_refused() -> None:
    utc = ZoneInfo("UTC")
    # A window longer than any request may give (12 months): the bound holds regardless.
    start = local_day_start_ms(date(2025, 1, 1), utc)
    long = Window(start, start + (MAX_BUCKETS + 1) * DAY_MS, utc, utc)
    with pytest.raises(WindowError, match=f"more than {MAX_BUCKETS} day buckets"):
        buckets(long, BucketUnit.DAY)
    assert len(buckets(Window(start, start + MAX_BUCKETS * DAY_MS, utc, utc), BucketUnit.DAY)) == (
        MAX_BUCKETS
    )


@pytest.mark.parametrize("value", ["hour", "Day", "", 7, ["day"], {"unit": "day"}])
def test_an_unknown_bucket_is_a_400(value: object) -> None:
    payload = request("ws-0001", "users", "2026-01-01", "2026-01-31") | {"bucket": value}
    found = validate_request(readable(payload), now=NOW)
    assert isinstance(found, Rejected)
    assert found.status == 400
    assert "bucket" in found.message
    assert "day, week, month" in found.message


def test_a_null_bucket_is_no_buckets() -> None:
    payload = request("ws-0001", "users", "2026-01-01", "2026-01-31") | {"bucket": None}
    found = validate_request(readable(payload), now=NOW)
    assert isinstance(found, ValidRequest)
    assert found.bucket is None
    assert found.buckets == ()


@pytest.mark.parametrize(("data_type", "group_by"), TYPES_AND_GROUPS)
@pytest.mark.parametrize("org", ["ws-0001", "ws-0002", "ws-0003", "ws-0004"])
def test_every_bucketed_type_matches_the_reference(
    stream: Stream, org: str, data_type: str, group_by: str | None
) -> None:
    byok, _ = stream.log.org(org).workspace_settings()
    refused = group_by == "deployment" and not byok
    statuses = [
        compare(stream, request(org, data_type, start, end, zone, group_by) | {"bucket": unit})
        for start, end, zone, unit in BUCKETED
    ]
    if refused:
        assert statuses == [400] * len(BUCKETED)
    else:  # 404: no activity in any bucket (both say so); most windows have some
        assert set(statuses) <= {200, 404}
        assert statuses.count(200) >= len(BUCKETED) - 1, statuses


# --- the invariant: bucket rows add up to the unbucketed row ---------------------------


def _additive(column: str) -> bool:
    """Columns whose value over a window is the sum of its values over parts of it:
    counts and sums, money spent, the per-key counts of the JSON maps; not ranks, distinct
    counts, minima, maxima, averages, ratios, limits or attributes."""
    kind = cell_kind(column)
    if kind is CellKind.JSON:
        return True
    if kind is CellKind.MONEY:
        return column != "payg_limit_current"
    distinct = {"unique_users", "active_users", "conversations", "assistants_messaged",
                "projects_messaged", "action_messaged"}  # fmt: skip
    return (
        kind is CellKind.INTEGER
        and not column.endswith("_rank")
        and column not in distinct
        and not column.startswith(("min_", "max_"))
    )


def _export(stream: Stream, payload: dict[str, Any]) -> Ours:
    return Ours(200, export_bytes(stream, payload))


#: One figure per user, repeated on each of the user's subgroup rows.
PER_ENTITY = {"payg_consumption_in_period"}


def _key(data_type: DataType, cells: dict[str, str], column: str) -> tuple[str, ...]:
    """The row's entity for a per-entity column, else its entity and subgroup value."""
    names = ["name", "provider", "bring_your_keys"] if data_type is DataType.MODELS else [
        spec(data_type).columns[0]]  # fmt: skip
    if column not in PER_ENTITY:
        names += [name for name in ("model", "source", "deployment") if name in cells]
    return tuple(cells[name] for name in names)


def _add(total: Any, cell: str, column: str) -> Any:
    if cell_kind(column) is CellKind.JSON:
        merged = defaultdict(int, total or {})
        for key, count in json.loads(cell).items():
            merged[key] += count
        return dict(merged)
    number = Decimal(cell) if cell_kind(column) is CellKind.MONEY else int(cell)
    return (total or 0) + number


@pytest.mark.parametrize(("data_type", "group_by"), [tg for tg in TYPES_AND_GROUPS
                                                      if tg[1] != "deployment"])  # fmt: skip
@pytest.mark.parametrize("unit", ["day", "week", "month"])
def test_bucket_rows_add_up_to_the_unbucketed_row(
    stream: Stream, data_type: str, group_by: str | None, unit: str
) -> None:
    payload = request("ws-0002", data_type, "2026-01-10", "2026-04-20", "America/St_Johns",
                      group_by)  # fmt: skip
    whole, cut = _export(stream, payload), _export(stream, payload | {"bucket": unit})
    kind = DataType.parse(data_type)
    additive = [column for column in whole.header if _additive(column)]
    assert additive, data_type
    sums: dict[tuple[str, tuple[str, ...]], Any] = {}
    counted: set[tuple[str, tuple[str, ...], str]] = set()  # per-entity: once a bucket
    for row in cut.rows:
        cells = dict(zip(cut.header, row, strict=True))
        for column in additive:
            key = _key(kind, cells, column)
            if column in PER_ENTITY:
                if (column, key, cells["bucket_start"]) in counted:
                    continue
                counted.add((column, key, cells["bucket_start"]))
            sums[column, key] = _add(sums.get((column, key)), cells[column], column)
    assert len({row[3] for row in cut.rows}) > 1  # several buckets have rows
    checked = 0
    for row in whole.rows:
        cells = dict(zip(whole.header, row, strict=True))
        for column in additive:
            expected = _add(None, cells[column], column)
            nothing: Any = {} if cell_kind(column) is CellKind.JSON else 0
            assert sums.get((column, _key(kind, cells, column)), nothing) == expected, (
                row[3:5],
                column,
            )
            checked += expected != nothing
    assert checked  # not only zeros
    # A bucket row the unbucketed export has no row for holds nothing additive: a user
    # grouped by model with only extra usage in a bucket has a row with an empty model there.
    rows = {_key(kind, dict(zip(whole.header, r, strict=True)), "") for r in whole.rows}
    for (column, key), total in sums.items():
        if column not in PER_ENTITY and key not in rows:
            assert total in (0, {}), (key, column)


def test_bucket_columns_are_dates_in_the_typed_formats(stream: Stream) -> None:
    payload = request("ws-0001", "models", "2026-02-01", "2026-03-31", "UTC") | {
        "bucket": "month",
        "format": "parquet",
    }
    table = pq.read_table(io.BytesIO(export_bytes(stream, payload)))
    assert table.column_names[:5] == [
        "period_start", "period_end", "bucket_start", "bucket_end", "org_id",
    ]  # fmt: skip
    starts = table.column("bucket_start").to_pylist()
    assert set(starts) == {date(2026, 2, 1), date(2026, 3, 1)}
    assert starts == sorted(starts)  # bucket ascending
