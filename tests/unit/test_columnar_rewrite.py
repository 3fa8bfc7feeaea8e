"""Replacing days of a facts table in one commit, serialized with the writers' commits,
and the janitor's span rewrites, refused only by commits that touch their spans (local
Delta tables; the real store is in tests/integration/test_replay.py and
test_ingest_state.py)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from shared.columnar.rewrite import (
    REWRITE_ROW_GROUP,
    append_rows,
    days_predicate,
    replace_days,
    rewrite_spans,
    span_rows,
)
from shared.columnar.schema import DIMENSIONS, FACTS
from shared.columnar.tables import (
    FACTS_TABLE,
    WRITER_APP_ID,
    TableStore,
    WorkspaceTables,
    read_facts,
)
from shared.errors import FencedOut

ORG = "ws-0001"
DAYS = [date(2024, 3, day) for day in range(1, 6)]


def _rows(*facts: tuple[str, date]) -> pa.Table:
    columns: dict[str, list[object]] = {name: [None] * len(facts) for name in FACTS.names}
    columns |= {
        "org_id": [ORG] * len(facts),
        "kind": ["payg"] * len(facts),
        "event_id": [event_id for event_id, _ in facts],
        "day": [day for _, day in facts],
        "occurred_ms": [0] * len(facts),
        "user_id": ["u-1"] * len(facts),
        "amount_nano": [1] * len(facts),
    }
    return pa.Table.from_pydict(columns, schema=FACTS)


async def _seeded(tmp_path: Path) -> tuple[TableStore, WorkspaceTables]:
    store = TableStore.local(str(tmp_path))
    tables = await WorkspaceTables.open(store, ORG)
    rows = _rows(*((f"e-{day.day}-{n}", day) for day in DAYS for n in range(2)))
    await tables.append(rows, DIMENSIONS.empty_table(), {("usage.events", 0): 10})
    return store, tables


def _facts(store: TableStore) -> DeltaTable:
    return DeltaTable(store.uri(ORG, FACTS_TABLE))


async def _stored(store: TableStore) -> list[tuple[str, date]]:
    found = await read_facts(store, ORG, DAYS[0], DAYS[-1], ["event_id", "day"])
    return sorted(zip(found["event_id"].to_pylist(), found["day"].to_pylist(), strict=True))


def _files_outside(table: DeltaTable, first: date, last: date) -> set[str]:
    return {
        uri
        for uri in table.file_uris()
        if not first.isoformat() <= uri.split("span=")[1][:10] <= last.isoformat()
    }


async def test_replace_days_swaps_only_those_days_in_one_commit(tmp_path: Path) -> None:
    store, _ = await _seeded(tmp_path)
    table = _facts(store)
    version, outside = table.version(), _files_outside(table, DAYS[1], DAYS[2])

    replace_days(table, DAYS[1], DAYS[2], _rows(("new", DAYS[1])))

    after = _facts(store)
    assert after.version() == version + 1
    assert _files_outside(after, DAYS[1], DAYS[2]) == outside
    expected = [(f"e-{day.day}-{n}", day) for day in (DAYS[0], *DAYS[3:]) for n in range(2)]
    assert await _stored(store) == sorted([*expected, ("new", DAYS[1])])
    assert after.transaction_version(WRITER_APP_ID) == version + 1
    assert after.transaction_version("usage.events:0") == 10, "no Kafka position moves"


async def test_no_rows_empties_the_days(tmp_path: Path) -> None:
    store, _ = await _seeded(tmp_path)
    replace_days(_facts(store), DAYS[0], DAYS[3], FACTS.empty_table())
    assert await _stored(store) == [("e-5-0", DAYS[4]), ("e-5-1", DAYS[4])]


async def test_a_row_outside_the_days_is_refused(tmp_path: Path) -> None:
    store, _ = await _seeded(tmp_path)
    before = await _stored(store)
    with pytest.raises(Exception, match="validation"):
        replace_days(_facts(store), DAYS[0], DAYS[0], _rows(("late", DAYS[1])))
    assert await _stored(store) == before


async def test_a_commit_since_the_snapshot_fences_the_replacement(tmp_path: Path) -> None:
    store, tables = await _seeded(tmp_path)
    stale = _facts(store)
    await tables.refresh()
    await tables.append(
        _rows(("ingest", DAYS[4])), DIMENSIONS.empty_table(), {("usage.events", 0): 11}
    )
    with pytest.raises(FencedOut):
        replace_days(stale, DAYS[1], DAYS[1], FACTS.empty_table())
    with pytest.raises(FencedOut):
        append_rows(stale, _rows(("x", DAYS[1])))
    assert ("ingest", DAYS[4]) in await _stored(store)
    assert len(await _stored(store)) == 11, "nothing of the fenced commits is visible"
    stale.update_incremental()
    replace_days(stale, DAYS[1], DAYS[1], FACTS.empty_table())
    assert len(await _stored(store)) == 9


async def test_a_writer_behind_a_replacement_is_fenced(tmp_path: Path) -> None:
    store, tables = await _seeded(tmp_path)
    replace_days(_facts(store), DAYS[1], DAYS[1], FACTS.empty_table())
    with pytest.raises(FencedOut):  # the writer's snapshot predates the replacement
        await tables.append(
            _rows(("ingest", DAYS[1])), DIMENSIONS.empty_table(), {("usage.events", 0): 11}
        )


def test_days_predicate() -> None:
    assert days_predicate(DAYS[0], DAYS[2]) == "day >= '2024-03-01' AND day <= '2024-03-03'"
    with pytest.raises(ValueError, match="before"):
        days_predicate(DAYS[2], DAYS[0])


MONTH = "2024-03"
APRIL = date(2024, 4, 1)


def _spans(table: DeltaTable) -> list[str]:
    actions = pa.table(table.get_add_actions(flatten=True))
    return sorted(actions.column("partition.span").to_pylist())


def _merge_month(table: DeltaTable) -> None:
    spans = [day.isoformat() for day in DAYS]
    rewrite_spans(table, spans, span_rows(table, spans), month=True)


async def test_merging_a_month_keeps_every_row_in_one_file_and_fences_no_writer(
    tmp_path: Path,
) -> None:
    store, _ = await _seeded(tmp_path)
    before = await _stored(store)
    table = _facts(store)
    version = table.version()

    _merge_month(table)

    after = _facts(store)
    assert _spans(after) == [MONTH]
    assert await _stored(store) == before
    assert after.transaction_version(WRITER_APP_ID) == version, "no writer is fenced by it"
    # A day of the merged month is still read alone, from the month file.
    one_day = await read_facts(store, ORG, DAYS[2], DAYS[2], ["event_id"])
    assert sorted(one_day["event_id"].to_pylist()) == ["e-3-0", "e-3-1"]


async def test_an_append_to_a_span_being_merged_refuses_the_merge(tmp_path: Path) -> None:
    store, tables = await _seeded(tmp_path)
    janitor_snapshot = _facts(store)
    rows = span_rows(janitor_snapshot, [day.isoformat() for day in DAYS])
    await tables.append(  # ingest commits to a day of the month meanwhile
        _rows(("ingest", DAYS[1])), DIMENSIONS.empty_table(), {("usage.events", 0): 11}
    )
    with pytest.raises(FencedOut):
        rewrite_spans(janitor_snapshot, [day.isoformat() for day in DAYS], rows, month=True)
    assert ("ingest", DAYS[1]) in await _stored(store)
    assert len(await _stored(store)) == 11


async def test_an_append_elsewhere_does_not_stop_a_merge(tmp_path: Path) -> None:
    store, tables = await _seeded(tmp_path)
    janitor_snapshot = _facts(store)
    await tables.append(
        _rows(("april", APRIL)), DIMENSIONS.empty_table(), {("usage.events", 0): 11}
    )
    _merge_month(janitor_snapshot)
    assert _spans(_facts(store)) == [MONTH, APRIL.isoformat()]
    stored = await read_facts(store, ORG, DAYS[0], APRIL, ["event_id"])
    assert len(stored) == len(set(stored["event_id"].to_pylist())) == 11


async def test_two_merges_from_one_snapshot_do_not_double_the_month(tmp_path: Path) -> None:
    store, _ = await _seeded(tmp_path)
    first, second = _facts(store), _facts(store)
    rows = span_rows(second, [day.isoformat() for day in DAYS])
    _merge_month(first)
    with pytest.raises(FencedOut):
        rewrite_spans(second, [day.isoformat() for day in DAYS], rows, month=True)
    assert len(await _stored(store)) == 10
    assert _spans(_facts(store)) == [MONTH]


async def test_a_writer_behind_a_merge_is_fenced(tmp_path: Path) -> None:
    store, tables = await _seeded(tmp_path)
    _merge_month(_facts(store))
    with pytest.raises(FencedOut):
        await tables.append(
            _rows(("ingest", DAYS[1])), DIMENSIONS.empty_table(), {("usage.events", 0): 11}
        )


async def test_a_merged_month_has_time_ordered_row_groups_a_day_read_can_skip(
    tmp_path: Path,
) -> None:
    """Rows sorted by time in groups of ``REWRITE_ROW_GROUP``: each group's ``day``
    statistics cover a few days, so a read of one day opens few of them."""
    store = TableStore.local(str(tmp_path))
    tables = await WorkspaceTables.open(store, ORG)
    per_day = REWRITE_ROW_GROUP // 4
    days = [date(2024, 3, day) for day in range(1, 13)]
    rows = pa.concat_tables(
        _rows(*((f"e-{day.day}-{n}", day) for n in range(per_day))) for day in days
    )
    day_numbers = pc.cast(pc.cast(rows.column("day"), pa.int32()), pa.int64())
    at = rows.schema.get_field_index("occurred_ms")
    rows = rows.set_column(at, FACTS.field("occurred_ms"), pc.multiply(day_numbers, 86_400_000))
    await tables.append(rows, DIMENSIONS.empty_table(), {("usage.events", 0): 1})
    table = _facts(store)
    spans = [day.isoformat() for day in days]
    rewrite_spans(table, spans, span_rows(table, spans), month=True)

    (path,) = _facts(store).file_uris()
    metadata = pq.ParquetFile(path).metadata
    day_column = metadata.schema.names.index("day")
    ranges = [
        (group.column(day_column).statistics.min, group.column(day_column).statistics.max)
        for group in (metadata.row_group(i) for i in range(metadata.num_row_groups))
    ]
    assert len(ranges) >= len(days) // 4
    assert all(low <= high for low, high in ranges)
    assert all(ranges[i][1] <= ranges[i + 1][0] for i in range(len(ranges) - 1)), "ordered"
    assert sum(low <= days[5] <= high for low, high in ranges) <= 2
