"""Ingest's writers and the compactor's janitor against the real store: two writers of one
workspace never lose or double an event; the janitor deletes expired days and merges a
closed month's small files without changing what is stored."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
from deltalake import DeltaTable

from services.compactor.janitor import COMPACT_MIN_FILES, Janitor
from services.ingest.workspace_writer import WorkspaceWriter
from shared.adapters.s3 import S3ObjectStore
from shared.columnar.schema import facts_table
from shared.columnar.tables import FACTS_TABLE, TableStore, WorkspaceTables, read_facts
from shared.settings import Settings
from tests.integration.columnar_seed import activity, day_start_ms, seed_days
from tests.integration.stored import stored_day_aggregates

ORG = "ws-state"
P0, P1 = ("usage.events", 0), ("usage.events", 1)
EVER = (datetime(1970, 1, 1).date(), datetime(9999, 12, 31).date())


def offsets(start: int, count: int) -> np.ndarray:
    return np.arange(start, start + count, dtype=np.int64)


async def test_two_writers_of_one_workspace_never_lose_or_double_an_event(
    fresh_settings: Settings,
) -> None:
    """A rebalance, or a workspace whose events span partitions, leaves two writers of one
    workspace, each offered some events the other has (a producer's retry on another
    partition). Whoever commits second is refused, reloads, and drops the winner's ids."""
    store = TableStore.of(fresh_settings)
    days = seed_days(4)
    facts = facts_table(ORG, activity(7, "e", 400, days))
    one = await WorkspaceWriter.open(store, ORG, [P0])
    other = await WorkspaceWriter.open(store, ORG, [P1])  # the same (empty) snapshot
    first, second = facts.slice(0, 300), facts.slice(100, 300)  # 200 ids in both
    assert (await one.add_facts(P0, offsets(0, 300), first)).applied == 300
    assert (await other.add_facts(P1, offsets(0, 300), second)).applied == 300

    assert await one.commit({P0: 300}) == 0
    assert await other.commit({P1: 300}) == 1  # refused once, then committed the rest

    stored = await read_facts(store, ORG, *EVER, ["event_id"])
    ids = stored.column("event_id").to_pylist()
    assert sorted(ids) == sorted(facts.column("event_id").to_pylist())
    assert len(ids) == len(set(ids)) == 400
    reopened = await WorkspaceTables.open(store, ORG)
    assert reopened.positions([P0, P1]).facts == {P0: 300, P1: 300}
    await stored_day_aggregates(fresh_settings, [ORG])  # fails on a doubled id


async def test_janitor_deletes_expired_days_and_merges_a_closed_month_once(
    fresh_settings: Settings, now: datetime
) -> None:
    settings = fresh_settings
    store = TableStore.of(settings)
    async with S3ObjectStore(settings, settings.aggregates_bucket) as objects:
        janitor = Janitor(settings, objects, store)
        cutoff = janitor.cutoff(now)
        old, recent = cutoff - timedelta(days=1), seed_days(1)[0]
        writer = await WorkspaceWriter.open(store, ORG, [P0])
        rows = activity(8, "j", 10 * COMPACT_MIN_FILES, [recent])
        expired = activity(9, "old", 5, [old])
        expired = [(f[0], f[1], day_start_ms(old) + n, *f[3:]) for n, f in enumerate(expired)]
        table = facts_table(ORG, expired)
        await writer.add_facts(P0, offsets(0, table.num_rows), table)
        await writer.commit({P0: table.num_rows})
        at = table.num_rows
        for flush in range(COMPACT_MIN_FILES):  # one small file of the recent day each
            # (40 days ago: its month is over, so the janitor merges it)
            part = facts_table(ORG, rows[flush * 10 : (flush + 1) * 10])
            await writer.add_facts(P0, offsets(at, 10), part)
            at += 10
            await writer.commit({P0: at})
        before = await read_facts(store, ORG, recent, recent)
        delta = DeltaTable(store.uri(ORG, FACTS_TABLE), storage_options=dict(store.options))
        assert len(delta.file_uris()) == COMPACT_MIN_FILES + 1

        swept = await janitor.sweep(now)

        assert (swept.expired_files, swept.merged_months, swept.compacted_days) == (1, 1, 0)
        assert (await read_facts(store, ORG, old, old)).num_rows == 0
        after = await read_facts(store, ORG, recent, recent)
        assert after.sort_by("event_id").equals(before.sort_by("event_id"))
        delta.update_incremental()
        assert len(delta.file_uris()) == 1
        # A second pass has nothing to do.
        again = await janitor.sweep(now)
        assert (again.merged_months, again.compacted_days) == (0, 0)
