"""A workspace writer's dedup on local tables: an id stored before is dropped whatever
its day, including ids this writer stored itself since it cached a day's ids."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

from services.compactor.janitor import Janitor
from services.ingest.workspace_writer import WorkspaceWriter
from shared.columnar import tables as tables_module
from shared.columnar.schema import facts_table, with_spans
from shared.columnar.tables import (
    FACTS_TABLE,
    WRITER_APP_ID,
    TableStore,
    WorkspaceTables,
    read_dimensions,
    read_facts,
)
from shared.domain.facts import PAYG
from shared.settings import Settings

ORG = "ws-1"
P0 = ("usage.events", 0)
D1, D2 = date(2026, 5, 1), date(2026, 5, 7)


def payg(event_id: str, day: date, hour: int = 1) -> tuple[object, ...]:
    ms = int(datetime(day.year, day.month, day.day, hour, tzinfo=UTC).timestamp() * 1000)
    return (PAYG, event_id, ms, "u1", 1_000)


def forget_recent(writer: WorkspaceWriter) -> None:
    """As if the ids stored so far had aged out of the writer's recent-ids sets, so that
    duplicates are confirmed against the stored days."""
    writer._recent.clear()
    writer._older.clear()


async def offer(writer: WorkspaceWriter, at: int, *facts: tuple[object, ...]) -> int:
    rows = facts_table(ORG, list(facts))
    offsets = np.arange(at, at + rows.num_rows, dtype=np.int64)
    return (await writer.add_facts(P0, offsets, rows)).applied


async def test_ids_stored_since_a_day_was_cached_are_still_duplicates(tmp_path: Path) -> None:
    store = TableStore.local(str(tmp_path))
    writer = await WorkspaceWriter.open(store, ORG, [P0])
    assert await offer(writer, 0, payg("e0", D1)) == 1
    await writer.commit({P0: 1})
    forget_recent(writer)
    # e0 again, re-stamped: a candidate, confirmed by reading D1's ids (now cached).
    assert await offer(writer, 1, payg("e0", D2, hour=5)) == 0
    assert await offer(writer, 2, payg("e1", D1), payg("e2", D2)) == 2
    await writer.commit({P0: 4})
    forget_recent(writer)
    # e1 went to the cached day D1, e2 to D2 (not cached, read from the snapshot).
    assert await offer(writer, 4, payg("e1", D2), payg("e2", D1), payg("e3", D1)) == 1
    await writer.commit({P0: 7})

    assert await offer(writer, 7, payg("e3", D2)) == 0  # from the recent ids
    stored = await read_facts(store, ORG, D1, D2, ["event_id", "day"])
    assert sorted(zip(*stored.to_pydict().values(), strict=True)) == [
        ("e0", D1),
        ("e1", D1),
        ("e2", D2),
        ("e3", D1),
    ]


async def test_a_reopened_writer_knows_every_stored_id(tmp_path: Path) -> None:
    store = TableStore.local(str(tmp_path))
    first = await WorkspaceWriter.open(store, ORG, [P0])
    await offer(first, 0, payg("a", D1), payg("b", D2))
    await first.commit({P0: 2})
    # Another process (another partition, no recorded position) sees both ids.
    other = await WorkspaceWriter.open(store, ORG, [("usage.events", 1)])
    rows = facts_table(ORG, [payg("b", D1), payg("a", D2), payg("c", D2)])
    applied = await other.add_facts(("usage.events", 1), np.arange(3, dtype=np.int64), rows)
    assert (applied.applied, applied.duplicates) == (1, 2)


async def test_a_reopened_writer_reads_the_stored_ids_a_few_files_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index is built from the files in groups (not one dataset of the whole table):
    every id of every group is known, and naming a file the snapshot lacks is an error."""
    monkeypatch.setattr(tables_module, "_FILES_PER_SCAN", 2)
    store = TableStore.local(str(tmp_path))
    first = await WorkspaceWriter.open(store, ORG, [P0])
    days = [date(2026, 5, day) for day in range(1, 6)]  # five spans: five files a commit
    await offer(first, 0, *(payg(f"a{n}", day) for n, day in enumerate(days)))
    await first.commit({P0: 5})
    await offer(first, 5, *(payg(f"b{n}", day) for n, day in enumerate(days)))
    await first.commit({P0: 10})
    tables = await WorkspaceTables.open(store, ORG)
    assert len(tables.facts_files()) == 10

    other = await WorkspaceWriter.open(store, ORG, [("usage.events", 1)])
    again = [payg(f"{letter}{n}", D2) for letter in "ab" for n in range(5)]
    rows = facts_table(ORG, [*again, payg("new", D2)])
    applied = await other.add_facts(("usage.events", 1), np.arange(11, dtype=np.int64), rows)
    assert (applied.applied, applied.duplicates) == (1, 10)
    with pytest.raises(ValueError, match="1 of the files"):
        list(tables.facts_batches(["event_id"], {"span=2026-05-01/missing.parquet"}))


async def test_a_flush_of_dimension_versions_alone_commits(tmp_path: Path) -> None:
    store = TableStore.local(str(tmp_path))
    writer = await WorkspaceWriter.open(store, ORG, [P0])
    version = ("users", "u1", 1_000, "d1", {"name": "Ada", "deleted": False})
    assert writer.add_dimensions(P0, [(0, version), (1, version)]).applied == 1
    assert await writer.commit({P0: 2}) == 0
    assert writer.pending == 0
    stored = await read_dimensions(store, ORG)
    assert stored.column("event_id").to_pylist() == ["d1"]


async def test_one_batch_confirms_candidates_of_more_days_than_are_cached(
    tmp_path: Path,
) -> None:
    """A backfill's batch names candidates of many days: they are read in one pass, and
    every one is confirmed, although more days are read than the cache keeps."""
    store = TableStore.local(str(tmp_path))
    writer = await WorkspaceWriter.open(store, ORG, [P0])
    days = [date(2026, 3, day) for day in range(1, 13)]
    assert await offer(writer, 0, *(payg(f"old-{n}", day) for n, day in enumerate(days))) == 12
    await writer.commit({P0: 12})
    forget_recent(writer)
    again = [payg(f"old-{n}", D2, hour=9) for n in range(12)]
    fresh = [payg(f"new-{n}", day) for n, day in enumerate(days)]
    assert await offer(writer, 12, *again, *fresh) == 12
    await writer.commit({P0: 36})
    stored = await read_facts(store, ORG, days[0], D2, ["event_id"])
    assert sorted(stored.column("event_id").to_pylist()) == sorted(
        [f"old-{n}" for n in range(12)] + [f"new-{n}" for n in range(12)]
    )


async def test_a_writer_fenced_by_a_merge_catches_up_without_doubling_its_index(
    tmp_path: Path,
) -> None:
    """The janitor's month merge refuses a writer's next commit; the writer adds to its
    index only ids it did not hold under their day (none: the merge moved known ids), and
    still drops a re-sent id, which it now confirms against the month file."""
    store = TableStore.local(str(tmp_path))
    writer = await WorkspaceWriter.open(store, ORG, [P0])
    await offer(writer, 0, payg("a", D1), payg("b", D2))
    await writer.commit({P0: 2})
    held = len(writer._index)
    janitor = Janitor(Settings(), None, store)  # type: ignore[arg-type]
    assert (await janitor.tidy([ORG], datetime(2026, 6, 2, tzinfo=UTC))).merged_months == 1
    forget_recent(writer)

    assert await offer(writer, 2, payg("c", D1)) == 1
    assert await writer.commit({P0: 3}) == 1, "fenced once by the merge"

    assert len(writer._index) == held + 1
    assert await offer(writer, 3, payg("a", D2, hour=9)) == 0
    stored = await read_facts(store, ORG, D1, D2, ["event_id"])
    assert sorted(stored.column("event_id").to_pylist()) == ["a", "b", "c"]


async def test_a_writer_commit_landing_right_after_this_one_has_its_ids_indexed(
    tmp_path: Path,
) -> None:
    """A commit leaves its table object where it was, and the writer moves to the latest
    commit, which may hold another writer's made just after: that writer's ids must
    reach the index, or a later duplicate of one of its events would count twice."""
    store = TableStore.local(str(tmp_path))
    writer = await WorkspaceWriter.open(store, ORG, [P0])
    assert await offer(writer, 0, payg("e1", D1)) == 1
    facts = writer._tables._tables[FACTS_TABLE]
    moved = facts.update_incremental

    def another_writer_commits_first() -> None:
        facts.update_incremental = moved  # type: ignore[method-assign]  # once
        other = DeltaTable(store.uri(ORG, FACTS_TABLE))
        rows = with_spans(facts_table(ORG, [payg("e2", D2)]))
        fence = [Transaction(WRITER_APP_ID, other.version() + 1)]
        write_deltalake(
            other, rows, mode="append", commit_properties=CommitProperties(app_transactions=fence)
        )
        moved()

    facts.update_incremental = another_writer_commits_first  # type: ignore[method-assign]
    assert await writer.commit({P0: 1}) == 0
    forget_recent(writer)

    # e2, produced again later, is the other writer's: a duplicate, whatever its day.
    assert await offer(writer, 1, payg("e2", D1, hour=3)) == 0
    stored = await read_facts(store, ORG, D1, D2, ["event_id"])
    assert sorted(stored.column("event_id").to_pylist()) == ["e1", "e2"]
