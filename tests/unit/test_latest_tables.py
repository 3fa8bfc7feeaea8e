"""The exporter's open tables: every read sees the latest commit (the commits since the
last read are read, the table is not opened again), a workspace without tables reads
empty until they exist, and the merged month and late day files are read alike."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from shared.columnar.schema import DIMENSIONS, facts_table
from shared.columnar.tables import LatestTables, TableStore, WorkspaceTables, read_facts
from shared.domain.facts import PAYG

ORG = "ws-1"
DAY = date(2026, 5, 3)


def payg(event_id: str, day: date) -> tuple[object, ...]:
    ms = int(datetime(day.year, day.month, day.day, 1, tzinfo=UTC).timestamp() * 1000)
    return (PAYG, event_id, ms, "u1", 1_000)


async def test_each_read_sees_the_latest_commit(tmp_path: Path) -> None:
    store = TableStore.local(str(tmp_path))
    latest = LatestTables(store)
    assert (await latest.facts(ORG, DAY, DAY, ["event_id"])).num_rows == 0
    assert (await latest.dimensions(ORG)).num_rows == 0

    tables = await WorkspaceTables.open(store, ORG)
    for n in range(3):
        await tables.append(
            facts_table(ORG, [payg(f"e{n}", DAY)]), DIMENSIONS.empty_table(), {("t", 0): n + 1}
        )
        read = await latest.facts(ORG, DAY, DAY, ["event_id"])
        assert sorted(read.column("event_id").to_pylist()) == [f"e{i}" for i in range(n + 1)]
    assert len(latest._open) == 1, "opened once, moved to the latest commit since"
    same = await read_facts(store, ORG, date(2026, 5, 1), date(2026, 5, 31), ["event_id"])
    wide = await latest.facts(ORG, date(2026, 5, 1), date(2026, 5, 31), ["event_id"])
    assert wide.equals(same)
    assert (await latest.facts(ORG, date(2026, 5, 4), date(2026, 6, 1), ["event_id"])).num_rows == 0


async def test_open_ahead_of_the_first_read(tmp_path: Path) -> None:
    """The exporter's warm-up: a workspace's tables opened before any read are the ones
    the first read uses (moved to the latest commit, not opened again); a workspace
    without tables opens nothing."""
    store = TableStore.local(str(tmp_path))
    tables = await WorkspaceTables.open(store, ORG)
    await tables.append(facts_table(ORG, [payg("a", DAY)]), DIMENSIONS.empty_table(), {("t", 0): 1})
    latest = LatestTables(store)
    await latest.open(ORG)
    await latest.open("ws-none")
    assert sorted(latest._open) == [(ORG, "dimensions"), (ORG, "facts")]
    opened = latest._open.get((ORG, "facts"))
    await tables.append(facts_table(ORG, [payg("b", DAY)]), DIMENSIONS.empty_table(), {("t", 0): 2})

    read = await latest.facts(ORG, DAY, DAY, ["event_id"])

    assert sorted(read.column("event_id").to_pylist()) == ["a", "b"]
    assert latest._open.get((ORG, "facts")) is opened
