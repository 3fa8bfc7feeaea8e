"""Pre-aggregated state (``shared.columnar.aggregates``) against the raw-facts queries,
byte for byte.

The same workspace tables (local Delta tables: facts written by ``WorkspaceTables``) are
exported twice: (a) as today — the window's facts into ``shared.columnar.queries`` — and
(b) from the ``daily``/``monthly`` aggregates plus facts where those are stale or the
window cuts a day (``read_window`` + the queries of ``queries/agg``). The files must be
identical bytes, in windows with partial days in +05:45, -03:30 and +13:45, with stale
days (facts added after the build), and after the builder caught up.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingest.decode import decode_batch
from services.ingest.validation import AcceptedRange
from shared.columnar import aggregates
from shared.columnar.aggregates import (
    SHAPES,
    FactsFiles,
    Plan,
    is_fresh,
    plan_window,
    read_window_sync,
    refresh_aggregates_sync,
)
from shared.columnar.queries import connect, export_csv
from shared.columnar.schema import FACTS, dimensions_table
from shared.columnar.tables import FACTS_TABLE, TableStore, WorkspaceTables
from shared.contracts.requests import DataType
from shared.domain.export.context import WorkspaceOptions
from shared.domain.window import Window, resolve_window, to_ms
from shared.simulation import SimConfig, simulate

NOW = datetime(2026, 11, 20, 12, 7, 31, tzinfo=UTC)
NOW_MS = to_ms(NOW)
TYPES_AND_GROUPS = [
    (DataType.USERS, None),
    (DataType.USERS, "model"),
    (DataType.ASSISTANTS, None),
    (DataType.ASSISTANTS, "model"),
    (DataType.API_KEYS, None),
    (DataType.API_KEYS, "model"),
    (DataType.PROJECTS, None),
    (DataType.MODELS, None),
    (DataType.MODELS, "source"),
    (DataType.MODELS, "deployment"),
]
#: (from, to, timezone): 12 months in +05:45 and -03:30 (partial first and last UTC
#: days), whole UTC months, quarter hours cutting days, +13:45.
WINDOWS = [
    ("2025-11-21", "2026-11-20", "Asia/Kathmandu"),
    ("2025-12-01", "2026-11-19", "America/St_Johns"),
    ("2026-01-01", "2026-06-30", "UTC"),
    ("2026-03-03T06:30:00", "2026-05-26T13:15:00", "Asia/Kathmandu"),
    ("2026-07-14T23:45:00", "2026-08-15T00:14:59", "Pacific/Chatham"),
]
OPTIONS = WorkspaceOptions(byok=True, user_level_data=True)
SOURCE = ("usage.events", 0)


def window(start: str, end: str, zone: str) -> Window:
    return resolve_window(start, zone, end, zone, now=NOW)


def simulated(seed: int) -> dict[str, tuple[pa.Table, pa.Table]]:
    """Each simulated workspace's (facts, dimensions), deduplicated as ingest does."""
    config = SimConfig(seed=seed, orgs=2, events=5000, late_rate=0.05, end=NOW - timedelta(hours=1))
    values = [record.value for record in simulate(config)]
    batch = decode_batch(values, AcceptedRange.at(NOW), max_bytes=1024 * 1024)
    workspaces = {}
    for org_id in sorted(set(batch.facts.column("org_id").to_pylist())):
        facts = batch.facts.filter(pc.equal(batch.facts.column("org_id"), org_id))
        ids = facts.column("event_id").to_numpy(zero_copy_only=False)
        _, first = np.unique(ids, return_index=True)
        facts = facts.take(pa.array(np.sort(first)))
        seen: set[str] = set()
        versions = []
        for _, org, version in batch.dimensions:
            if org == org_id and version[3] not in seen:
                seen.add(version[3])
                versions.append(version)
        workspaces[org_id] = (facts, dimensions_table(org_id, versions))
    return workspaces


async def _append(store: TableStore, org_id: str, facts: pa.Table, dims: pa.Table, at: int) -> None:
    tables = await WorkspaceTables.open(store, org_id)
    await tables.append(facts, dims, {SOURCE: at})


def store_with(tmp: Path, workspaces: dict[str, tuple[pa.Table, pa.Table]]) -> TableStore:
    """A local store holding the workspaces, each in two commits (two files a day)."""
    store = TableStore.local(str(tmp))
    for org_id, (facts, dims) in workspaces.items():
        half = facts.num_rows // 2
        asyncio.run(_append(store, org_id, facts.slice(0, half), dims, 1))
        asyncio.run(_append(store, org_id, facts.slice(half), dims.schema.empty_table(), 2))
    return store


def raw_export(
    facts: pa.Table, dims: pa.Table, export: tuple[DataType, str | None], win: Window
) -> bytes | None:
    """Today's path: the facts (the store's, kept in memory) into the type's query."""
    key = (id(facts), id(dims))
    con = _raw_connections.get(key)
    if con is None:
        con = _raw_connections[key] = connect(facts, dims)
    result = export_csv(
        con,
        export[0],
        org_id="ws-0001",
        group_by=export[1],
        start_ms=win.start_ms,
        end_ms=win.end_ms,
        period_start=win.period_start().isoformat(),
        period_end=win.period_end().isoformat(),
        options=OPTIONS,
    )
    return result.data if result.rows else None


_raw_connections: dict[tuple[int, int], duckdb.DuckDBPyConnection] = {}


def aggregated_export(
    store: TableStore, org_id: str, dims: pa.Table, export: tuple[DataType, str | None], win: Window
) -> tuple[bytes | None, Plan]:
    rows = read_window_sync(store, org_id, win.start_ms, win.end_ms, SHAPES[export[0]])
    result = aggregates.export_csv(
        aggregates.connect(rows.rows, dims),
        export[0],
        org_id="ws-0001",
        group_by=export[1],
        start_ms=win.start_ms,
        end_ms=win.end_ms,
        period_start=win.period_start().isoformat(),
        period_end=win.period_end().isoformat(),
        options=OPTIONS,
    )
    return (result.data if result.rows else None), rows.plan


def assert_same(
    store: TableStore,
    org_id: str,
    facts: pa.Table,
    dims: pa.Table,
    windows: list[tuple[str, str, str]] = WINDOWS,
) -> list[Plan]:
    """Both paths agree on every type and window; returns the aggregated path's plans."""
    plans = []
    for bounds in windows:
        win = window(*bounds)
        for export in TYPES_AND_GROUPS:
            expected = raw_export(facts, dims, export, win)
            actual, plan = aggregated_export(store, org_id, dims, export, win)
            assert actual == expected, (org_id, bounds, export)
            plans.append(plan)
    return plans


@pytest.fixture(scope="module")
def workspaces() -> dict[str, tuple[pa.Table, pa.Table]]:
    return simulated(21)


def test_fresh_aggregates_match_the_facts_byte_for_byte(
    tmp_path: Path, workspaces: dict[str, tuple[pa.Table, pa.Table]]
) -> None:
    org_id = sorted(workspaces)[0]
    facts, dims = workspaces[org_id]
    store = store_with(tmp_path, {org_id: (facts, dims)})
    # Nothing built yet: every day from facts.
    before = assert_same(store, org_id, facts, dims, WINDOWS[:1])
    assert all(not plan.months and not plan.days for plan in before)
    built = refresh_aggregates_sync(store, org_id, now_ms=NOW_MS)
    assert built.days_built > 300
    assert built.months_built == 12
    again = refresh_aggregates_sync(store, org_id, now_ms=NOW_MS)
    assert (again.days_built, again.months_built) == (0, 0)  # nothing stale
    plans = assert_same(store, org_id, facts, dims)
    # The 12-month windows read 10+ whole months, and facts only for their edge days.
    twelve = [plan for plan in plans if len(plan.months) >= 10]
    assert len(twelve) == 2 * len(TYPES_AND_GROUPS)
    for plan, bounds in zip(twelve, [WINDOWS[0]] * 10 + [WINDOWS[1]] * 10, strict=True):
        win = window(*bounds)
        edges = {win.utc_days()[0], win.utc_days()[-1]}
        assert plan.fact_days
        assert set(plan.fact_days) <= edges
    assert sum(len(plan.days) for plan in plans) > 0


def _late_copies(facts: pa.Table, day: date, count: int) -> pa.Table:
    """``count`` new events on ``day`` (copies of other facts moved there, new ids)."""
    sample = facts.slice(0, count)
    start = (day - date(1970, 1, 1)).days * 86_400_000
    instants = pa.array([start + 3_600_000 * (n % 24) + n for n in range(count)], pa.int64())
    columns = {name: sample.column(name) for name in FACTS.names}
    columns["occurred_ms"] = instants
    columns["day"] = pa.array([day] * count, pa.date32())
    columns["event_id"] = pa.array([f"late-{day}-{n}" for n in range(count)], pa.string())
    return pa.table(columns, schema=FACTS)


def test_a_stale_day_is_read_from_facts_until_the_builder_catches_up(
    tmp_path: Path, workspaces: dict[str, tuple[pa.Table, pa.Table]]
) -> None:
    org_id = sorted(workspaces)[0]
    facts, dims = workspaces[org_id]
    mine = {org_id: (facts, dims)}
    store = store_with(tmp_path, mine)
    refresh_aggregates_sync(store, org_id, now_ms=NOW_MS)
    win = window(*WINDOWS[0])
    export = (DataType.USERS, "model")
    before, fresh_plan = aggregated_export(store, org_id, dims, export, win)
    late_day = date(2026, 3, 10)
    assert date(2026, 3, 1) in fresh_plan.months

    late = _late_copies(facts, late_day, 40)
    asyncio.run(_append(store, org_id, late, dims.schema.empty_table(), 3))
    now_stored = pa.concat_tables([facts, late])
    for data_type, group_by in TYPES_AND_GROUPS:
        for bounds in WINDOWS[:2]:
            stale_win = window(*bounds)
            expected = raw_export(now_stored, dims, (data_type, group_by), stale_win)
            actual, plan = aggregated_export(store, org_id, dims, (data_type, group_by), stale_win)
            assert actual == expected, (data_type, group_by, bounds)
            assert late_day in plan.fact_days
            assert date(2026, 3, 1) not in plan.months
            assert date(2026, 3, 9) in plan.days  # the rest of March from the daily table
    stale, _ = aggregated_export(store, org_id, dims, export, win)
    assert stale != before  # the late events count at once

    caught_up = refresh_aggregates_sync(store, org_id, now_ms=NOW_MS)
    assert (caught_up.days_built, caught_up.months_built) == (1, 1)
    after, plan = aggregated_export(store, org_id, dims, export, win)
    assert after == stale == raw_export(now_stored, dims, export, win)
    assert date(2026, 3, 1) in plan.months
    assert late_day not in plan.fact_days


def test_days_without_facts_lose_their_aggregates(
    tmp_path: Path, workspaces: dict[str, tuple[pa.Table, pa.Table]]
) -> None:
    org_id = sorted(workspaces)[1]
    facts, dims = workspaces[org_id]
    store = store_with(tmp_path, {org_id: (facts, dims)})
    refresh_aggregates_sync(store, org_id, now_ms=NOW_MS)
    table = DeltaTable(store.uri(org_id, FACTS_TABLE))
    table.delete("day < '2026-01-01'")  # what the janitor does past the retention
    kept = facts.filter(pc.greater_equal(facts.column("day"), pa.scalar(date(2026, 1, 1))))
    for bounds in WINDOWS[:2]:
        win = window(*bounds)
        for export in TYPES_AND_GROUPS:
            actual, plan = aggregated_export(store, org_id, dims, export, win)
            assert actual == raw_export(kept, dims, export, win)
            assert not plan.fact_days or min(plan.fact_days) >= date(2026, 1, 1)
            assert all(month >= date(2026, 1, 1) for month in plan.months)
    swept = refresh_aggregates_sync(store, org_id, now_ms=NOW_MS)
    assert swept.periods_deleted > 0
    assert swept.days_built == 0
    for name in aggregates.AGGREGATE_TABLES:
        periods = aggregates.builds(DeltaTable(aggregates.aggregate_uri(store, org_id, name)))
        assert periods
        assert min(periods) >= date(2026, 1, 1)


def test_a_period_is_fresh_with_exactly_one_build_of_the_current_facts() -> None:
    assert is_fresh({"abc.b1"}, "abc")
    assert not is_fresh({"abc.b1"}, "abd")
    assert not is_fresh({"abc.b1", "abc.b2"}, "abc")  # two builders both committed
    assert not is_fresh(set(), "abc")
    assert not is_fresh(None, "abc")


def test_the_plan_reads_whole_fresh_months_then_days_then_facts() -> None:
    day = date(2026, 1, 1)
    files = FactsFiles({day + timedelta(days=n): (f"f{n}",) for n in range(70)})
    fresh = {d: {f"{files.day(d)}.b"} for d in files.paths}
    months = {date(2026, 1, 1): {f"{files.month(date(2026, 1, 1))}.b"}, date(2026, 2, 1): {"x.b"}}
    win = window("2026-01-01", "2026-03-05", "Asia/Kathmandu")  # starts 2025-12-31 18:15Z
    plan = plan_window(win.start_ms, win.end_ms, files, fresh, months)
    assert plan.months == (date(2026, 1, 1),)
    # It ends 2026-03-05 18:15Z: February is stale as a month, its days are fresh.
    assert plan.days == tuple(date(2026, 2, 1) + timedelta(days=n) for n in range(28 + 4))
    assert plan.fact_days == (date(2026, 3, 5),)  # the partial last day
    assert plan.skipped == (date(2025, 12, 31),)  # no facts that day
    stale = dict(fresh) | {date(2026, 2, 3): {"old.b"}}
    plan = plan_window(win.start_ms, win.end_ms, files, stale, months)
    assert date(2026, 2, 3) in plan.fact_days
    assert date(2026, 2, 3) not in plan.days


# ---- the shapes with every tricky value: in memory, split into periods at random ----------

TRICKY = 'ab=+-@\t\r\n,"\\ é\x00\x0b\x1f\x7f\u2028😀'
names = st.text(alphabet=TRICKY, min_size=1, max_size=3)
counts = st.integers(0, 3)
#: Few models, so that groups hold several facts (n > 1) and sums differ from counts.
few_models = st.sampled_from(["=m", 'm,"1'])
nanos = st.sampled_from([0, 1, 499, 500, 1500, 2500, 999_999_500, 10**9 + 500, 10**15])
BASE = 20_400 * 86_400_000


@st.composite
def fact_rows(draw: st.DrawFn) -> dict[str, object]:
    kind = draw(st.sampled_from(["message", "message", "api_request", "payg"]))
    at = BASE + draw(st.integers(0, 3 * 86_400_000))
    row: dict[str, object] = {"org_id": "ws-1", "kind": kind, "occurred_ms": at}
    row["day"] = date(1970, 1, 1) + timedelta(days=at // 86_400_000)
    if kind == "payg":
        return row | {"user_id": draw(st.sampled_from(["u-1", "u-2"])), "amount_nano": draw(nanos)}
    row |= {
        "model": draw(few_models),
        "provider": draw(names),
        "byok": draw(st.booleans()),
        "deployment": draw(st.just("") | names),
        "source": draw(names),
        "requests": draw(st.integers(1, 3)),
        "prompt_tokens": draw(counts),
        "completion_tokens": draw(counts),
        "cached_tokens": draw(counts),
        "creation_tokens": draw(counts),
        "cost_nano": draw(nanos),
    }
    if kind == "api_request":
        return row | {"api_key_id": draw(st.sampled_from(["k-1", "k-2"]))}
    return row | {
        "user_id": draw(st.sampled_from(["u-1", "u-3"])),
        "assistant_id": draw(st.none() | st.just("a-1")),
        "project_id": draw(st.none() | st.just("p-1")),
        "conversation_id": draw(st.none() | st.sampled_from(["c-1", "c-2"])),
        "actions": sorted(draw(st.sets(names, max_size=3))),
    }


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(fact_rows(), min_size=5, max_size=40), seed=st.integers(0, 2**16))
def test_shapes_regrouped_from_any_split_equal_the_facts(
    rows: list[dict[str, object]], seed: int
) -> None:
    facts = pa.Table.from_pylist(
        [row | {"event_id": f"e-{n}"} for n, row in enumerate(rows)], schema=FACTS
    )
    dims = dimensions_table(
        "ws-1", [("users", "u-3", BASE, "d-1", {"name": "=x", "deleted": True})]
    )
    win = Window(
        BASE + 3_600_000, BASE + 2 * 86_400_000 + 900_000, *(2 * (window(*WINDOWS[2]).from_zone,))
    )
    # The window's rows shaped in random parts (as months, days and edges are), then
    # some parts regrouped by month: the sums of parts must equal the whole.
    rng = random.Random(seed)
    first = pa.array([rng.random() < 0.5 for _ in range(facts.num_rows)], pa.bool_())
    parts = [facts.filter(first), facts.filter(pc.invert(first))]
    shaped = [aggregates.facts_in_shape(part, win.start_ms, win.end_ms) for part in parts]
    shaped[0] = aggregates.regroup_by_month(shaped[0])
    rows_in_shape = pa.concat_tables(shaped)
    raw, mine = connect(facts, dims), aggregates.connect(rows_in_shape, dims)
    for data_type, group_by in TYPES_AND_GROUPS:
        arguments = {
            "org_id": "ws-1",
            "group_by": group_by,
            "start_ms": win.start_ms,
            "end_ms": win.end_ms,
            "period_start": "a",
            "period_end": "b",
            "options": OPTIONS,
        }
        expected = export_csv(raw, data_type, **arguments)  # type: ignore[arg-type]
        actual = aggregates.export_csv(mine, data_type, **arguments)  # type: ignore[arg-type]
        assert (actual.rows, actual.data) == (expected.rows, expected.data), data_type


def test_conform_refuses_a_sum_beyond_int64() -> None:
    """Token sums are stored as int64: a sum that does not fit fails the build (the
    period stays stale, read from facts), never wraps."""
    huge = pa.table(
        {
            "period": pa.array([date(2026, 1, 1)]),
            "shape": ["message"],
            "n": pa.array([1]),
            "prompt_tokens": pa.array([2**70], pa.decimal128(38, 0)),
        }
    )
    with pytest.raises(pa.ArrowInvalid):
        aggregates._conform(huge)
