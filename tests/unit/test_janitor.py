"""Two janitors compacting the same day from the same snapshot (every ingest process runs
one) must not double it: the second commit is refused (local tables; the race is made
deterministic by running the other janitor inside the first one's read)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable

from services.ingest import janitor as janitor_module
from services.ingest.janitor import COMPACT_MIN_FILES, Janitor
from shared.columnar.schema import DIMENSIONS, facts_table
from shared.columnar.tables import FACTS_TABLE, TableStore, WorkspaceTables, facts_of, read_facts
from shared.domain.facts import PAYG
from shared.settings import Settings

ORG = "ws-1"
DAY = date(2026, 5, 1)
DAY_MS = int(datetime(2026, 5, 1, tzinfo=UTC).timestamp() * 1000)


async def seeded(tmp_path: Path) -> TableStore:
    store = TableStore.local(str(tmp_path))
    tables = await WorkspaceTables.open(store, ORG)
    for flush in range(COMPACT_MIN_FILES):
        rows = facts_table(ORG, [(PAYG, f"e{flush}-{n}", DAY_MS + n, "u1", 5) for n in range(3)])
        await tables.append(rows, DIMENSIONS.empty_table(), {("usage.events", 0): flush + 1})
    return store


async def test_racing_compactions_of_a_day_keep_every_row_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await seeded(tmp_path)
    janitor = Janitor(Settings(), None, store)  # type: ignore[arg-type]
    now = datetime(2026, 6, 1, tzinfo=UTC)
    read = facts_of  # what janitor_module.facts_of is, until patched below
    raced: list[Any] = []
    racing = False

    def read_then_let_the_other_janitor_compact(*args: Any) -> Any:
        nonlocal racing
        rows = read(*args)
        if not racing:  # the other janitor, from the same snapshot, commits first
            racing = True
            raced.append(janitor._upkeep(ORG, janitor.cutoff(now)))
        return rows

    monkeypatch.setattr(janitor_module, "facts_of", read_then_let_the_other_janitor_compact)
    first = janitor._upkeep(ORG, janitor.cutoff(now))

    assert raced[0].compacted_days == 1
    assert first.compacted_days == 0
    stored = await read_facts(store, ORG, DAY, DAY, ["event_id"])
    ids = stored.column("event_id").to_pylist()
    assert len(ids) == len(set(ids)) == 3 * COMPACT_MIN_FILES
    table = DeltaTable(store.uri(ORG, FACTS_TABLE))
    assert len(table.file_uris()) == 1
