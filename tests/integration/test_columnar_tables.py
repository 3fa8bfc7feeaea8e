"""Format-2 tables on the real object store: what an append commits is read back exactly
with its Kafka positions; a zombie is fenced out and nothing doubles; another partition's
writer rebases; files no commit references are never read; a crash between the two
commits replays each record once per table; a day range reads only its partitions; a
store holding only the old layout (format 1) for a workspace is refused, naming replay."""

from __future__ import annotations

import io
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from shared.adapters.s3 import S3ObjectStore
from shared.columnar.migration import check_storage_format
from shared.columnar.tables import (
    DIMENSIONS_TABLE,
    FACTS_TABLE,
    Positions,
    TableStore,
    WorkspaceTables,
    read_dimensions,
    read_facts,
    storage_options,
)
from shared.errors import FencedOut, StorageFormatMismatch
from shared.settings import Settings
from tests.integration.columnar_seed import activity, rows, seed_days, versions

ORG = "ws-0001"
TOPIC = "usage.events"
P0, P1 = (TOPIC, 0), (TOPIC, 1)


def by_id(table: pa.Table) -> pa.Table:
    return table.sort_by("event_id")


def committed_keys(settings: Settings, uri: str) -> set[str]:
    table = DeltaTable(uri, storage_options=storage_options(settings))
    prefix = f"s3://{settings.aggregates_bucket}/"
    return {uri_.removeprefix(prefix) for uri_ in table.file_uris()}


async def parquet_keys(settings: Settings, uri: str) -> set[str]:
    """What a LIST of the table's folder shows (committed or not)."""
    prefix = uri.removeprefix(f"s3://{settings.aggregates_bucket}/") + "/"
    async with S3ObjectStore(settings, settings.aggregates_bucket) as store:
        listed = await store.list_objects(prefix)
    return {item.key for item in listed if item.key.endswith(".parquet")}


async def test_append_reads_back_exactly_and_records_positions(fresh_settings: Settings) -> None:
    days = seed_days(5)
    facts, dims = rows(ORG, activity(1, "e", 300, days), versions("e", 7, days))
    tables = await WorkspaceTables.open(TableStore.of(fresh_settings), ORG)
    assert tables.positions([P0]) == Positions(facts={}, dimensions={})

    await tables.append(facts, dims, {P0: 120, P1: 7})

    assert by_id(await read_facts(tables.store, tables.org_id, days[0], days[-1])).equals(
        by_id(facts)
    )
    assert by_id(await read_dimensions(tables.store, tables.org_id)).equals(by_id(dims))
    expected = {P0: 120, P1: 7}
    assert tables.positions([P0, P1]) == Positions(facts=expected, dimensions=expected)
    # What is durable is what a new reader of the store finds, not this object's memory.
    reopened = await WorkspaceTables.open(TableStore.of(fresh_settings), ORG)
    assert reopened.positions([P0, P1, (TOPIC, 2)]) == Positions(expected, expected)
    ids = await read_facts(
        reopened.store, reopened.org_id, days[0], days[-1], columns=["event_id", "cost_nano"]
    )
    assert ids.column_names == ["event_id", "cost_nano"]
    assert pc.sum(ids["cost_nano"]).as_py() == pc.sum(facts["cost_nano"]).as_py()


async def test_a_zombie_with_a_stale_snapshot_is_fenced_out_and_nothing_doubles(
    fresh_settings: Settings,
) -> None:
    days = seed_days(3)
    first, first_dims = rows(ORG, activity(2, "a", 50, days), versions("a", 3, days))
    owner = await WorkspaceTables.open(TableStore.of(fresh_settings), ORG)
    await owner.append(first, first_dims, {P0: 50})
    # The zombie read its positions here; then the partition moved to a new owner, which
    # re-read records 50.. and committed them.
    zombie = await WorkspaceTables.open(TableStore.of(fresh_settings), ORG)
    new_owner = await WorkspaceTables.open(TableStore.of(fresh_settings), ORG)
    batch, batch_dims = rows(ORG, activity(3, "b", 40, days), versions("b", 4, days))
    await new_owner.append(batch, batch_dims, {P0: 90})

    with pytest.raises(FencedOut, match="another writer committed since version 1"):
        await zombie.append(batch, batch_dims, {P0: 90})

    read = await read_facts(new_owner.store, new_owner.org_id, days[0], days[-1])
    assert read.num_rows == 90
    assert by_id(read).equals(by_id(pa.concat_tables([first, batch])))
    assert (await read_dimensions(new_owner.store, new_owner.org_id)).num_rows == 7
    fresh = await WorkspaceTables.open(TableStore.of(fresh_settings), ORG)
    assert fresh.positions([P0]) == Positions(facts={P0: 90}, dimensions={P0: 90})
    # The zombie's refused commit left its data files behind: a LIST sees them, no reader
    # does, since readers go through the log.
    uri = fresh.uri(DIMENSIONS_TABLE)
    orphans = await parquet_keys(fresh_settings, uri) - committed_keys(fresh_settings, uri)
    assert orphans, "the refused commit wrote no data file: the test proves nothing"
    # After a refresh it sees what is durable and has nothing left to commit.
    await zombie.refresh()
    assert zombie.positions([P0]) == fresh.positions([P0])


async def test_a_position_that_does_not_advance_is_refused(fresh_settings: Settings) -> None:
    days = seed_days(2)
    facts, dims = rows(ORG, activity(4, "c", 20, days), versions("c", 2, days))
    tables = await WorkspaceTables.open(TableStore.of(fresh_settings), ORG)
    await tables.append(facts, dims, {P0: 20})
    with pytest.raises(FencedOut, match="already recorded at 20"):
        await tables.append(facts, dims, {P0: 20})
    assert (await read_facts(tables.store, tables.org_id, days[0], days[-1])).num_rows == 20


async def test_a_writer_of_another_partition_refreshes_then_succeeds(
    fresh_settings: Settings,
) -> None:
    """Two writers of one workspace are serialized: the second must see the first's
    event ids before it commits (dedup), so its stale commit is refused even though its
    partition is another one; after a refresh it commits."""
    days = seed_days(3)
    one = await WorkspaceTables.open(TableStore.of(fresh_settings), ORG)
    other = await WorkspaceTables.open(TableStore.of(fresh_settings), ORG)  # `one`'s snapshot
    f0, d0 = rows(ORG, activity(5, "p0", 30, days), versions("p0", 2, days))
    f1, d1 = rows(ORG, activity(6, "p1", 25, days), versions("p1", 3, days))

    await one.append(f0, d0, {P0: 30})
    with pytest.raises(FencedOut, match="another writer committed"):
        await other.append(f1, d1, {P1: 25})
    await other.refresh()
    await other.append(f1, d1, {P1: 25})

    read = await read_facts(one.store, ORG, days[0], days[-1])
    assert by_id(read).equals(by_id(pa.concat_tables([f0, f1])))
    dims = await read_dimensions(one.store, ORG)
    assert by_id(dims).equals(by_id(pa.concat_tables([d0, d1])))
    both = {P0: 30, P1: 25}
    reopened = await WorkspaceTables.open(TableStore.of(fresh_settings), ORG)
    assert reopened.positions([P0, P1]) == Positions(both, both)


async def test_a_crash_between_the_two_commits_replays_each_record_once_per_table(
    fresh_settings: Settings,
) -> None:
    days = seed_days(3)
    # Records 0..59 of partition 0: record i is facts[i] for i < 50, dims[i - 50] after.
    facts, dims = rows(ORG, activity(7, "r", 50, days), versions("r", 10, days))
    offsets = {FACTS_TABLE: list(range(50)), DIMENSIONS_TABLE: list(range(50, 60))}
    crashed = await WorkspaceTables.open(TableStore.of(fresh_settings), ORG)
    # The dimensions' commit (the first) landed, then the process died before the facts'.
    await crashed.append(facts.slice(0, 0), dims, {P0: 60})

    restarted = await WorkspaceTables.open(TableStore.of(fresh_settings), ORG)
    positions = restarted.positions([P0])
    assert positions == Positions(facts={}, dimensions={P0: 60})

    def pending(name: str, table: pa.Table) -> pa.Table:
        keep = [not positions.holds(name, P0, offset) for offset in offsets[name]]
        return table.filter(pa.array(keep))

    replay_facts, replay_dims = pending(FACTS_TABLE, facts), pending(DIMENSIONS_TABLE, dims)
    assert (replay_facts.num_rows, replay_dims.num_rows) == (50, 0)
    await restarted.append(replay_facts, replay_dims, {P0: 60})

    assert by_id(await read_facts(restarted.store, restarted.org_id, days[0], days[-1])).equals(
        by_id(facts)
    )
    assert by_id(await read_dimensions(restarted.store, restarted.org_id)).equals(by_id(dims))
    assert restarted.positions([P0]) == Positions({P0: 60}, {P0: 60})


async def test_files_written_but_not_committed_are_invisible(fresh_settings: Settings) -> None:
    days = seed_days(2)
    facts, dims = rows(ORG, activity(8, "w", 40, days), versions("w", 3, days))
    tables = await WorkspaceTables.open(TableStore.of(fresh_settings), ORG)
    await tables.append(facts, dims, {P0: 43})
    # A writer died after uploading its Parquet files, before its commit: valid files of
    # the right schema, where delta-rs puts them, that no log entry references.
    extra, extra_dims = rows(ORG, activity(9, "orphan", 25, days), versions("orphan", 2, days))
    async with S3ObjectStore(fresh_settings, fresh_settings.aggregates_bucket) as store:
        for name, data, folder in (
            (FACTS_TABLE, extra.drop_columns(["day"]), f"day={days[0].isoformat()}/"),
            (DIMENSIONS_TABLE, extra_dims, ""),
        ):
            body = io.BytesIO()
            pq.write_table(data, body)
            prefix = tables.uri(name).removeprefix(f"s3://{fresh_settings.aggregates_bucket}/")
            key = f"{prefix}/{folder}part-00000-0rphan-c000.snappy.parquet"
            await store.put(key, body.getvalue())
            assert key in await parquet_keys(fresh_settings, tables.uri(name))

    assert by_id(await read_facts(tables.store, tables.org_id, days[0], days[-1])).equals(
        by_id(facts)
    )
    assert by_id(await read_dimensions(tables.store, tables.org_id)).equals(by_id(dims))


async def test_a_day_range_reads_only_its_partitions(fresh_settings: Settings) -> None:
    days = seed_days(6)
    facts, dims = rows(ORG, activity(10, "d", 400, days), versions("d", 2, days))
    tables = await WorkspaceTables.open(TableStore.of(fresh_settings), ORG)
    await tables.append(facts, dims, {P0: 402})
    # Break every committed file of the days outside the range: a read that opened one
    # would fail.
    outside = [days[0], days[1], days[5]]
    uri = tables.uri(FACTS_TABLE)
    broken = {key for key in committed_keys(fresh_settings, uri) if _day_of(key) in outside}
    assert len(broken) >= len(outside)
    async with S3ObjectStore(fresh_settings, fresh_settings.aggregates_bucket) as store:
        for key in broken:
            await store.put(key, b"not parquet")

    read = await read_facts(tables.store, tables.org_id, days[2], days[4])

    in_range = facts.filter(pc.is_in(facts["day"], pa.array(days[2:5], pa.date32())))
    assert 0 < in_range.num_rows < facts.num_rows
    assert by_id(read).equals(by_id(in_range))
    with pytest.raises(pa.ArrowException, match=r"(?i)parquet"):
        await read_facts(tables.store, tables.org_id, days[5], days[5])


def _day_of(key: str) -> date | None:
    for segment in key.split("/"):
        if segment.startswith("span=") and len(segment) == len("span=YYYY-MM-DD"):
            return date.fromisoformat(segment.removeprefix("span="))
    return None


async def test_a_workspace_held_only_in_an_older_format_is_refused_naming_replay(
    fresh_settings: Settings,
) -> None:
    days = seed_days(1)
    async with S3ObjectStore(fresh_settings, fresh_settings.aggregates_bucket) as store:
        await check_storage_format(store)  # an empty store is format 3 from the start
        await store.put(f"v1/orgs/{ORG}/days/{days[0].isoformat()}/head.json", b"{}")
        await store.put("v2/workspaces/ws-0002/facts/_delta_log/0.json", b"{}")

        with pytest.raises(StorageFormatMismatch, match="usage-export replay") as refused:
            await check_storage_format(store)
        assert "ws-0001, ws-0002" in str(refused.value)

        # Replay rebuilt ws-0001 into format 3; ws-0002 still has only the old layout.
        facts, dims = rows(ORG, activity(11, "m", 5, days), versions("m", 1, days))
        await (await WorkspaceTables.open(TableStore.of(fresh_settings), ORG)).append(
            facts, dims, {P0: 6}
        )
        with pytest.raises(StorageFormatMismatch, match="usage-export replay") as refused:
            await check_storage_format(store)
        assert "ws-0002" in str(refused.value)
        assert ORG not in str(refused.value)

        await store.delete("v2/workspaces/ws-0002/facts/_delta_log/0.json")
        await check_storage_format(store)
