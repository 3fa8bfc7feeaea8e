"""The janitor's rounds on local tables: a closed month is merged into one file, a crowded
day of the current month compacted, late day files of a merged month merged in once they
make ``COMPACT_MIN_FILES``; retention deletes old days (rewriting a month file that holds
newer ones too); two janitors racing from one snapshot never double a row (two compactor
replicas of one shard, as in a rolling update; the race is made deterministic by running
the other janitor inside the first one's read)."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from services.compactor import janitor as janitor_module
from services.compactor.janitor import COMPACT_MIN_FILES, Janitor
from shared.columnar import rewrite
from shared.columnar.schema import DIMENSIONS, facts_table
from shared.columnar.tables import FACTS_TABLE, TableStore, WorkspaceTables, read_facts
from shared.domain.facts import PAYG
from shared.settings import Settings

ORG = "ws-1"
DAY = date(2026, 5, 1)


def _ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


class Seeder:
    """Appends flushes of three payg facts a day, as ingest would (one file per day)."""

    def __init__(self, tables: WorkspaceTables) -> None:
        self.tables = tables
        self.flushes = 0

    async def flush(self, *days: date) -> None:
        self.flushes += 1
        facts = [
            (PAYG, f"e{self.flushes}-{day.isoformat()}-{n}", _ms(day) + n, "u1", 5)
            for day in days
            for n in range(3)
        ]
        await self.tables.refresh()
        await self.tables.append(
            facts_table(ORG, facts), DIMENSIONS.empty_table(), {("usage.events", 0): self.flushes}
        )


async def seeder(tmp_path: Path) -> tuple[TableStore, Seeder]:
    store = TableStore.local(str(tmp_path))
    return store, Seeder(await WorkspaceTables.open(store, ORG))


def spans(store: TableStore) -> list[str]:
    table = DeltaTable(store.uri(ORG, FACTS_TABLE))
    return sorted(
        pa.table(table.get_add_actions(flatten=True)).column("partition.span").to_pylist()
    )


async def stored_ids(store: TableStore, first: date, last: date) -> list[str]:
    found = await read_facts(store, ORG, first, last, ["event_id"])
    ids: list[str] = found.column("event_id").to_pylist()
    assert len(ids) == len(set(ids)), "a row is doubled"
    return sorted(ids)


def janitor(store: TableStore) -> Janitor:
    return Janitor(Settings(), None, store)  # type: ignore[arg-type]


async def test_a_closed_month_is_merged_and_the_current_month_only_compacted(
    tmp_path: Path,
) -> None:
    store, seed = await seeder(tmp_path)
    may = [DAY + timedelta(days=n) for n in range(3)]
    june = date(2026, 6, 2)
    await seed.flush(*may)
    await seed.flush(may[0], june)
    for _ in range(COMPACT_MIN_FILES - 1):
        await seed.flush(june)
    before = await stored_ids(store, DAY, june)
    now = datetime(2026, 6, 3, tzinfo=UTC)

    done = await janitor(store).tidy([ORG], now)

    assert (done.merged_months, done.compacted_days) == (1, 1)
    assert spans(store) == ["2026-05", "2026-06-02"]
    assert await stored_ids(store, DAY, june) == before
    assert len(await stored_ids(store, may[1], may[1])) == 3, "a day read from a month file"
    again = await janitor(store).tidy([ORG], now)
    assert (again.merged_months, again.compacted_days) == (0, 0)


async def test_late_days_of_a_merged_month_are_merged_in_once_they_are_many(
    tmp_path: Path,
) -> None:
    store, seed = await seeder(tmp_path)
    await seed.flush(DAY)
    now = datetime(2026, 7, 1, tzinfo=UTC)
    assert (await janitor(store).tidy([ORG], now)).merged_months == 1
    for _ in range(COMPACT_MIN_FILES - 1):
        await seed.flush(DAY + timedelta(days=3))
    assert (await janitor(store).tidy([ORG], now)).merged_months == 0
    assert len(spans(store)) == COMPACT_MIN_FILES
    await seed.flush(DAY + timedelta(days=4))

    assert (await janitor(store).tidy([ORG], now)).merged_months == 1
    assert spans(store) == ["2026-05"]
    assert len(await stored_ids(store, DAY, DAY + timedelta(days=30))) == 3 * COMPACT_MIN_FILES + 3


async def test_retention_deletes_old_days_also_inside_a_month_file(tmp_path: Path) -> None:
    store, seed = await seeder(tmp_path)
    await seed.flush(DAY, DAY + timedelta(days=10))
    await janitor(store).tidy([ORG], datetime(2026, 6, 15, tzinfo=UTC))
    assert spans(store) == ["2026-05"]
    the_janitor = janitor(store)
    now = datetime(2026, 5, 5, tzinfo=UTC) + timedelta(
        days=Settings().retention_days + Settings().retention_margin_days
    )
    assert the_janitor.cutoff(now) == DAY + timedelta(days=4)

    swept = await full_pass(the_janitor, now)

    assert swept.expired_files == 1
    assert await stored_ids(store, DAY, DAY + timedelta(days=30)) == [
        f"e1-{(DAY + timedelta(days=10)).isoformat()}-{n}" for n in range(3)
    ]


async def full_pass(the_janitor: Janitor, now: datetime) -> janitor_module.Sweep:
    """The hourly pass, over the one workspace of the local store (no bucket to list)."""
    return await asyncio.to_thread(the_janitor._upkeep, ORG, now, full=True)


@pytest.mark.parametrize("first_month", ["2026-05", "2026-06"])
async def test_racing_janitors_keep_every_row_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first_month: str
) -> None:
    """Two janitors from one snapshot: merging a closed month (May) or compacting a day of
    the current month (June): the second commit is refused, nothing is doubled."""
    store, seed = await seeder(tmp_path)
    day = date.fromisoformat(f"{first_month}-01")
    for _ in range(COMPACT_MIN_FILES):
        await seed.flush(day)
    now = datetime(2026, 6, 20, tzinfo=UTC)
    read = rewrite.span_rows
    other = janitor(store)
    raced: list[Any] = []
    racing = False

    def read_then_let_the_other_janitor_commit(*args: Any) -> Any:
        nonlocal racing
        rows = read(*args)
        if not racing:  # the other janitor, from the same snapshot, commits first
            racing = True
            raced.append(other._upkeep(ORG, now, full=False))
        return rows

    monkeypatch.setattr(janitor_module, "span_rows", read_then_let_the_other_janitor_commit)
    first = janitor(store)._upkeep(ORG, now, full=False)

    assert raced[0].merged_months + raced[0].compacted_days == 1
    assert first.merged_months + first.compacted_days == 0
    assert len(await stored_ids(store, day, day)) == 3 * COMPACT_MIN_FILES
    assert len(spans(store)) == 1


async def test_a_round_refused_by_an_ingest_commit_is_tried_again_next_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ingest commits to a day being merged while the janitor reads it: the merge is
    refused (that commit's rows would be lost), and the next round merges the workspace
    although ingest has not committed to it since. (An append to another day of the month
    does not refuse it: that file stays, as a day file, until merged in later.)"""
    store, seed = await seeder(tmp_path)
    await seed.flush(DAY)
    now = datetime(2026, 6, 20, tzinfo=UTC)
    read = rewrite.span_rows
    late: list[str] = []

    def read_while_ingest_commits(*args: Any) -> Any:
        rows = read(*args)
        if not late:
            late.append("committed")
            asyncio.run(seed.flush(DAY))  # from another thread: a loop of its own
        return rows

    monkeypatch.setattr(janitor_module, "span_rows", read_while_ingest_commits)
    the_janitor = janitor(store)
    refused = await the_janitor.tidy([ORG], now)
    assert (refused.merged_months, refused.fenced) == (0, 1)
    assert spans(store) == ["2026-05-01", "2026-05-01"]

    again = await the_janitor.tidy([], now)

    assert (again.merged_months, again.fenced) == (1, 0)
    assert spans(store) == ["2026-05"]
    assert len(await stored_ids(store, DAY, DAY)) == 6


async def test_workspaces_a_failing_store_kept_from_tidying_are_tidied_next_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, seed = await seeder(tmp_path)
    await seed.flush(DAY)
    now = datetime(2026, 6, 20, tzinfo=UTC)
    the_janitor = janitor(store)
    upkeep = the_janitor._upkeep

    def store_down(*args: Any, **kwargs: Any) -> Any:
        raise OSError("Generic S3 error: error sending request")

    monkeypatch.setattr(the_janitor, "_upkeep", store_down)
    with pytest.raises(OSError, match="S3"):
        await the_janitor.tidy([ORG], now)
    monkeypatch.setattr(the_janitor, "_upkeep", upkeep)

    assert (await the_janitor.tidy([], now)).merged_months == 1
    assert spans(store) == ["2026-05"]


async def test_a_roll_up_that_fails_costs_only_speed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A roll-up's own failure (bad data, a bug) is logged; the month is merged all the
    same and the janitor goes on (exports read the file's facts)."""
    store, seed = await seeder(tmp_path)
    await seed.flush(DAY, DAY + timedelta(days=1))

    def broken(*args: object) -> None:
        raise ValueError("an int64 overflow in a partial")

    monkeypatch.setattr(janitor_module, "roll_up", broken)
    done = await janitor(store).tidy([ORG], datetime(2026, 6, 3, tzinfo=UTC))

    assert (done.merged_months, done.rolled_up_files, done.fenced) == (1, 0, 0)
    assert spans(store) == ["2026-05"]
