"""Scenario 1: ingest SIGKILLed while a stream with duplicates, late and out-of-order events
comes in, restarted each time; the exports equal the oracle's.

Ingest keeps each workspace's state in two Delta tables (storage format 2,
``docs/storage.md``); a flush writes Parquet data files, then commits them with one PUT
of the table's next ``_delta_log/NNNNNNNNNNNNNNNNNNNN.json`` per table (dimensions first,
then facts), each carrying the Kafka positions it covers; only then are the offsets
committed. Three kills land at the dangerous moments on purpose, through the store proxy,
and the test proves from the store and the broker that they did:

* ``dimensions committed, facts not``: the PUT of a facts log entry that follows, in the
  same workspace, the PUT of a dimensions log entry is frozen before the store sees it,
  and ingest is killed; the store then holds a dimensions commit whose positions are
  ahead of both the facts table's and the group's committed offsets — records the
  restarted worker reads again and must apply to the facts only;
* ``commit durable, offsets not committed``: the store's answer to the PUT of a facts log
  entry is held back (the commit took effect), and ingest is killed before it could
  commit the offsets; the log entry is then in the store, its positions are past the
  committed offsets, and its files hold events the restarted worker reads again and must
  drop as duplicates;
* ``data files written, commit not``: the PUT of a facts log entry that follows PUTs of
  Parquet files of that table is frozen before the store sees it, and ingest is killed;
  the store then holds Parquet files that no commit references (orphans), whose events
  must all end up stored once, by the restarted worker's own commit.

The other kills come at random moments once the restarted worker is committing again.
Afterwards every stored fact and dimension version equals a recomputation from the raw
events (no ``event_id`` stored twice), and every export equals the oracle's.
"""

from __future__ import annotations

import asyncio
import io
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from urllib.parse import unquote

import pyarrow.parquet as pq
import pytest

from shared import codec
from shared.adapters.s3 import S3ObjectStore
from shared.columnar.tables import TableStore, read_facts
from shared.settings import Settings
from tests.integration.conftest import FreshSettingsFactory
from tests.integration.kafka_tools import committed, read_topic
from tests.integration.reliability.conftest import FiguresRecorder
from tests.integration.reliability.exports import (
    dataset_window,
    exporter_in_process,
    requests_for,
    verify_exports,
)
from tests.integration.reliability.processes import ServiceFleet, ServiceProcess
from tests.integration.reliability.proxy import FaultProxy, Trigger
from tests.integration.reliability.seeds import scenario_random
from tests.integration.reliability.streams import (
    Dataset,
    Progress,
    end_offsets,
    produce_paced,
    records_between,
    simulated,
)
from tests.integration.reliability.waiting import wait_committed_while_alive
from tests.integration.test_ingest import assert_aggregates_match

TARGETED_KILLS = 3
#: Production goes on this long per targeted kill (and for the first start): the wait for
#: its moment plus a restart (imports, joining the group, loading the tables), so that
#: commits keep coming until the last targeted kill.
TARGETED_KILL_S = 8.0


@dataclass(frozen=True)
class Size:
    events: int
    random_kills: int  # after the kills at the dangerous moments
    orgs: int
    interval_s: tuple[float, float]  # a random kill comes this long (uniform) after ...
    # ... the restarted worker committed again.
    days: float = 364.0
    # Settings of the ingest under test: the short version flushes and commits often, so
    # that its kills land around commits; the full one runs with the service defaults.
    overrides: tuple[tuple[str, object], ...] = ()


SHORT = Size(
    events=20_000,
    random_kills=1,
    orgs=3,
    interval_s=(0.0, 2.0),
    days=15.0,
    overrides=(
        ("ingest_flush_interval_s", 0.5),
        ("ingest_backlog_flush_interval_s", 2.0),
        ("kafka_session_timeout_ms", 3_000),
        ("kafka_heartbeat_interval_ms", 500),
    ),
)
FULL = Size(events=500_000, random_kills=12, orgs=5, interval_s=(3.0, 15.0))

_LOG_ENTRY = re.compile(r"_delta_log/(\d{20})\.json$")


def commit_put(settings: Settings, table: str) -> re.Pattern[bytes]:
    """The PUT of a ``table`` log entry written by an ingest flush: the commit of an
    append (``"operation":"WRITE"``, mode ``Append``, on the first line of its body), not
    the janitor's rewrites or retention delete. Group 1 is the table's key
    (``v3/workspaces/{org}/{table}``), group 2 the version. The body's first line must come
    in the same read as the request line (most do; a commit whose body comes later is let
    through, and the next one is waited for)."""
    bucket = re.escape(settings.aggregates_bucket.encode())
    return re.compile(
        rb"PUT /" + bucket + rb"/(v3/workspaces/[^/ ]+/" + table.encode() + rb")"
        rb"/_delta_log/(\d{20})\.json HTTP/1\.1\r\n.*?\r\n\r\n"
        rb'\{"commitInfo":\{[^\n]*?"operation":"WRITE"[^\n]*?"mode":"Append"',
        re.DOTALL,
    )


def is_data_commit(match: re.Match[bytes]) -> bool:
    """Version 0 creates the table (no data, no positions): not the moment wanted."""
    return int(match.group(2)) > 0


@dataclass
class LogEntry:
    """One Delta commit: the data files it adds (keys in the bucket) and the positions
    it records (partition of the events topic -> next offset)."""

    added: list[str] = field(default_factory=list)
    positions: dict[int, int] = field(default_factory=dict)


def parse_log_entry(settings: Settings, table_key: str, body: bytes) -> LogEntry:
    entry = LogEntry()
    for line in body.splitlines():
        if not line.strip():
            continue
        action = codec.loads(line)
        if "add" in action:
            entry.added.append(f"{table_key}/{unquote(action['add']['path'])}")
        if "txn" in action:
            topic, _, partition = str(action["txn"]["appId"]).rpartition(":")
            if topic == settings.topic_events:
                entry.positions[int(partition)] = int(action["txn"]["version"])
    return entry


async def log_entry(settings: Settings, table_key: str, version: int) -> LogEntry | None:
    """Commit ``version`` of the table, or None if the store does not hold it."""
    async with S3ObjectStore(settings, settings.aggregates_bucket) as store:
        stored = await store.get(f"{table_key}/_delta_log/{version:020d}.json")
    return None if stored is None else parse_log_entry(settings, table_key, stored.body)


async def log_entries(settings: Settings, table_key: str) -> dict[int, LogEntry]:
    """Every commit of the table (its JSON log entries: never cleaned up here)."""
    async with S3ObjectStore(settings, settings.aggregates_bucket) as store:
        listed = await store.list_objects(f"{table_key}/_delta_log/")
        entries = {}
        for item in listed:
            found = _LOG_ENTRY.search(item.key)
            if found is None:
                continue
            stored = await store.get(item.key)
            assert stored is not None
            entries[int(found.group(1))] = parse_log_entry(settings, table_key, stored.body)
    return entries


async def parquet_keys(settings: Settings, table_key: str) -> set[str]:
    """The table's Parquet files as a LIST of its folder shows them (committed or not)."""
    async with S3ObjectStore(settings, settings.aggregates_bucket) as store:
        listed = await store.list_objects(f"{table_key}/")
    return {item.key for item in listed if item.key.endswith(".parquet")}


async def event_ids_in(settings: Settings, keys: list[str]) -> list[str]:
    """The ``event_id`` of every row of these Parquet files, read as plain files."""
    ids: list[str] = []
    async with S3ObjectStore(settings, settings.aggregates_bucket) as store:
        for key in keys:
            stored = await store.get(key)
            assert stored is not None, f"{key} is not in the store"
            table = pq.read_table(io.BytesIO(stored.body), columns=["event_id"])
            ids += [str(event_id) for event_id in table.column("event_id").to_pylist()]
    return ids


def org_of(table_key: str) -> str:
    return table_key.split("/")[2]  # v3/workspaces/{org}/{table}


def request_key(line: str, bucket: str) -> tuple[str, str | None]:
    """(method, key) of a proxy request line; key: the object's key in ``bucket``, without
    a query (None for a request of another bucket or of the bucket itself)."""
    method, path = line.split(" ", 1)
    parts = unquote(path.split("?", 1)[0]).split("/", 2)
    return method, parts[2] if len(parts) == 3 and parts[1] == bucket else None


async def fired(trigger: Trigger, process: ServiceProcess, what: str, timeout_s: float) -> None:
    """Until the proxy froze ``what``, failing at once if the service exits."""
    deadline = time.monotonic() + timeout_s
    while not await trigger.wait(0.5):
        process.check_alive()
        assert time.monotonic() < deadline, f"ingest never reached {what}"


async def committing_again(
    settings: Settings, since: dict[int, int], progress: Progress, process: ServiceProcess
) -> dict[int, int]:
    """Until the group committed past ``since`` (the restarted worker owns the partitions
    and makes progress), or everything produced is committed (nothing left to crash on)."""
    partitions = range(settings.events_partitions)
    deadline = time.monotonic() + 300
    while True:
        process.check_alive()
        now = await committed(settings, settings.ingest_group, settings.topic_events, partitions)
        if any(now[p] > since.get(p, 0) for p in partitions):
            return now
        if progress.done.is_set() and all(now[p] >= e for p, e in progress.ends.items()):
            return now
        assert time.monotonic() < deadline, f"ingest did not commit again: {now}"
        await asyncio.sleep(0.3)


async def committed_offsets(settings: Settings) -> dict[int, int]:
    partitions = range(settings.events_partitions)
    return await committed(settings, settings.ingest_group, settings.topic_events, partitions)


EventKey = tuple[str, str]  # (org_id, event_id): what dedup is keyed by


def event_key_of(value: bytes) -> EventKey | None:
    try:
        event = codec.loads(value)
    except ValueError:
        return None
    if not isinstance(event, dict):
        return None
    return str(event.get("org_id")), str(event.get("event_id"))


def unique_events(dataset: Dataset) -> set[EventKey]:
    """Events that occur once in the stream (not re-sent as a duplicate)."""
    counts: Counter[EventKey] = Counter()
    for record in dataset.records:
        key = event_key_of(record.value)
        if key is not None:
            counts[key] += 1
    return {key for key, count in counts.items() if count == 1}


async def uncommitted_tail(settings: Settings) -> set[EventKey]:
    """The events of the records after the group's committed offsets: what a restarted
    worker reads again."""
    starts = await committed_offsets(settings)
    ends = await end_offsets(settings, settings.topic_events)
    tail = await records_between(settings, settings.topic_events, starts, ends)
    return {found for value in tail if (found := event_key_of(value)) is not None}


def positions_ahead(entry: LogEntry, offsets: dict[int, int]) -> dict[int, tuple[int, int]]:
    """Partition -> (committed offset, recorded position) where the commit's recorded
    position is past the group's committed offset; fails if any is not."""
    assert entry.positions, "a data commit records the Kafka positions it covers"
    behind = {p: (offsets[p], v) for p, v in entry.positions.items() if v <= offsets[p]}
    assert not behind, f"offsets already committed up to the commit's positions: {behind}"
    return {p: (offsets[p], v) for p, v in entry.positions.items()}


async def durable_uncommitted(
    settings: Settings, direct: Settings, dataset: Dataset, table_key: str, version: int
) -> int:
    """Proves that the held commit took effect while its offsets were not committed, and
    returns how many of its events are durable although their records come after the
    group's committed offsets: the events a restarted worker reads again and must drop.
    Counted only for ids that occur once in the stream, so a duplicate re-sent by the
    producer is never mistaken for a redelivery."""
    entry = await log_entry(direct, table_key, version)
    assert entry is not None, f"the held commit {table_key} v{version} did not take effect"
    positions_ahead(entry, await committed_offsets(settings))
    org_id = org_of(table_key)
    durable = {(org_id, event_id) for event_id in await event_ids_in(direct, entry.added)}
    return len(durable & await uncommitted_tail(settings) & unique_events(dataset))


@dataclass
class Orphans:
    """Parquet files a flush wrote whose commit never reached the store."""

    table_key: str
    version: int  # the frozen commit's
    keys: list[str]
    event_ids: list[str] = field(default_factory=list)


async def unreferenced(direct: Settings, orphans: Orphans) -> list[str]:
    """Those of the orphans that are in the store and that no commit of the table
    references (all of them, when the kill fell where it should)."""
    referenced = {
        key for entry in (await log_entries(direct, orphans.table_key)).values()
        for key in entry.added
    }  # fmt: skip
    listed = await parquet_keys(direct, orphans.table_key)
    return [key for key in orphans.keys if key in listed and key not in referenced]


async def dimensions_ahead(
    settings: Settings, direct: Settings, facts_key: str, dims_version: int, facts_version: int
) -> dict[int, tuple[int, int]]:
    """Proves that the kill fell between the two commits of one flush: the dimensions
    commit is in the store, the facts commit is not, and the dimensions' positions are
    ahead of the facts table's and of the committed offsets. Returns partition ->
    (facts' recorded position, dimensions')."""
    dims_key = facts_key.rsplit("/", 1)[0] + "/dimensions"
    dims = await log_entry(direct, dims_key, dims_version)
    assert dims is not None, f"the dimensions commit {dims_key} v{dims_version} is not stored"
    assert await log_entry(direct, facts_key, facts_version) is None, "the facts commit landed"
    facts_entries = await log_entries(direct, facts_key)
    facts_recorded: dict[int, int] = {}
    for version in sorted(facts_entries):
        facts_recorded |= facts_entries[version].positions
    positions_ahead(dims, await committed_offsets(settings))
    ahead = {p: (facts_recorded.get(p, 0), v) for p, v in dims.positions.items()}
    behind = {p: pair for p, pair in ahead.items() if pair[0] >= pair[1]}
    assert not behind, f"the facts table already holds the dimensions' positions: {behind}"
    versions = await event_ids_in(direct, dims.added)
    assert versions, "a dimensions commit adds dimension versions"
    return ahead


class FlushLog:
    """What the proxy's request log says about a workspace's flush, looking back from a
    commit's PUT (``accept`` callbacks run on the proxy's thread, before the matching
    request is logged)."""

    def __init__(self, proxy: FaultProxy, bucket: str) -> None:
        self._proxy = proxy
        self._bucket = bucket

    def writes_since_last_commit(
        self, prefix: str, *, since: int = 0
    ) -> tuple[list[str], str | None]:
        """(keys written under ``prefix`` since its last log entry PUT, newest first; the
        key of that log entry, None if there is none), among the requests from the
        ``since``-th on (those of one process: a process killed earlier may have left
        uploads unfinished, which are in the log but not in the store)."""
        written: list[str] = []
        for line in reversed(self._proxy.requests[since:]):
            method, key = request_key(line, self._bucket)
            if key is None or not key.startswith(prefix) or method not in ("PUT", "POST"):
                continue
            if _LOG_ENTRY.search(key):
                return written, key
            written.append(key)
        return written, None


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(SHORT, id="short"),
        pytest.param(FULL, id="500k", marks=[pytest.mark.soak, pytest.mark.timeout(5400)]),
    ],
)
async def test_sigkilled_ingest_loses_and_doubles_nothing(
    make_fresh_settings: FreshSettingsFactory,
    store_proxy: FaultProxy,
    tmp_path: Path,
    figures: FiguresRecorder,
    size: Size,
) -> None:
    row = figures.row("1", "short" if size is SHORT else f"{size.events // 1000}k")
    seed, rng = scenario_random(f"1/{size.events}")
    row.details["seed"] = seed
    settings = await make_fresh_settings(**dict(size.overrides), s3_endpoint=store_proxy.endpoint)
    direct = settings.model_copy(update={"s3_endpoint": store_proxy.target_endpoint})
    dataset = simulated(
        seed % 10_000, size.events, orgs=size.orgs, days=size.days, invalid_rate=0.01
    )
    records = dataset.kafka_records
    row.events = len(records)
    row.details |= {
        "duplicates": dataset.count("duplicate"),
        "invalid": dataset.count("invalid"),
    }
    # Spread production over the kills, so that they land while events stream in.
    mean_interval = sum(size.interval_s) / 2 + 3.0  # + the wait for the restart to commit
    progress = Progress(total=len(records))
    kill_points: list[float] = []
    facts_commit = commit_put(settings, "facts")
    flushes = FlushLog(store_proxy, settings.aggregates_bucket)
    async with ServiceFleet(tmp_path) as fleet:
        ingest = fleet.start("ingest", settings, log_level="INFO")
        producing = asyncio.create_task(
            produce_paced(
                settings,
                settings.topic_events,
                records,
                duration_s=size.random_kills * mean_interval
                + (TARGETED_KILLS + 1) * TARGETED_KILL_S,
                progress=progress,
            )
        )
        try:
            # 1. A flush committed a workspace's dimensions; its facts commit is frozen.
            # (First: most upserts come early in the stream.)
            dims_commit: list[int] = []

            def after_a_dimensions_commit(match: re.Match[bytes]) -> bool:
                workspace = match.group(1).decode().rsplit("/", 1)[0] + "/"
                _, last_commit = flushes.writes_since_last_commit(workspace)
                if last_commit is None or not last_commit.startswith(workspace + "dimensions/"):
                    return False
                version = int(_LOG_ENTRY.search(last_commit).group(1))  # type: ignore[union-attr]
                dims_commit.append(version)
                return is_data_commit(match) and version > 0

            trigger = store_proxy.arm(facts_commit, accept=after_a_dimensions_commit)
            await fired(trigger, ingest, "a facts commit after a dimensions commit", 300)
            assert ingest.kill() == -9
            kill_points.append(round(progress.fraction, 3))
            match = facts_commit.search(trigger.matched)
            assert match is not None
            ahead = await dimensions_ahead(
                settings, direct, match.group(1).decode(), dims_commit[-1], int(match.group(2))
            )
            row.details["dimensions_ahead_of_facts_at_kill"] = {
                str(p): list(pair) for p, pair in sorted(ahead.items())
            }
            store_proxy.release()
            ingest = fleet.start("ingest", settings, log_level="INFO")

            # 2. A facts commit is durable (the store answered 200), its offsets are not
            # committed.
            trigger = store_proxy.arm(facts_commit, hold="response", accept=is_data_commit)
            await fired(trigger, ingest, "a facts commit", timeout_s=300)
            assert await trigger.wait_answered(60), "the store never answered the held PUT"
            assert trigger.answer.startswith(b"HTTP/1.1 200"), trigger.answer[:100]
            assert ingest.kill() == -9
            kill_points.append(round(progress.fraction, 3))
            match = facts_commit.search(trigger.matched)
            assert match is not None
            redelivered = await durable_uncommitted(
                settings, direct, dataset, match.group(1).decode(), int(match.group(2))
            )
            row.details["durable_not_committed_at_kill"] = redelivered
            assert redelivered > 0, "the kill did not fall between a durable commit and offsets"
            store_proxy.release()
            started_at = len(store_proxy.requests)
            ingest = fleet.start("ingest", settings, log_level="INFO")

            # 3. Parquet files of the facts are written, the commit adding them is not.
            written: list[list[str]] = []

            def after_data_files(match: re.Match[bytes]) -> bool:
                prefix = match.group(1).decode() + "/"
                keys, _ = flushes.writes_since_last_commit(prefix, since=started_at)
                files = [key for key in keys if key.endswith(".parquet")]
                if not is_data_commit(match) or not files:
                    return False
                written.append(files)
                return True

            trigger = store_proxy.arm(facts_commit, accept=after_data_files)
            await fired(trigger, ingest, "a facts commit after its data files", timeout_s=600)
            assert ingest.kill() == -9
            kill_points.append(round(progress.fraction, 3))
            match = facts_commit.search(trigger.matched)
            assert match is not None
            orphans = Orphans(match.group(1).decode(), int(match.group(2)), written[-1])
            assert await log_entry(direct, orphans.table_key, orphans.version) is None
            assert await unreferenced(direct, orphans) == orphans.keys, (
                "the kill did not fall between data files' writes and their commit"
            )
            orphans.event_ids = await event_ids_in(direct, orphans.keys)
            assert orphans.event_ids
            row.details["orphan_parquet_files_at_kill"] = len(orphans.keys)
            row.details["orphan_rows_at_kill"] = len(orphans.event_ids)
            store_proxy.release()
            ingest = fleet.start("ingest", settings, log_level="INFO")

            # Then at random moments, each once the restarted worker commits again.
            since = await committed_offsets(settings)
            for _ in range(size.random_kills):
                since = await committing_again(settings, since, progress, ingest)
                await asyncio.sleep(rng.uniform(*size.interval_s))
                ingest.check_alive()
                assert ingest.kill() == -9
                kill_points.append(round(progress.fraction, 3))
                await asyncio.sleep(rng.uniform(0.0, 1.0))  # restarted after up to 1 s
                ingest = fleet.start("ingest", settings, log_level="INFO")
            row.faults = TARGETED_KILLS + size.random_kills
            ends = await producing
        finally:
            producing.cancel()
            await asyncio.gather(producing, return_exceptions=True)
        row.fault_kinds = (
            "SIGKILL: dimensions committed, facts not; commit durable, offsets not; "
            "data files, no commit; random"
        )
        row.details["kills_at_fraction_produced"] = kill_points
        row.details["produced_s"] = round(time.monotonic() - row.started, 1)
        await wait_committed_while_alive(settings, ends, ingest, timeout_s=1800)
        row.details["caught_up_s"] = round(time.monotonic() - row.started, 1)
        # A SIGTERM that lands while the restarted process still imports ends it by the
        # default action (-15): not the drain this checks.
        await ingest.wait_for_log("ingest consuming")
        assert await ingest.terminate() == 0, ingest.log_tail()
        row.details["ingest_peak_rss_mib"] = max(p.peak_rss_kib for p in fleet.processes) // 1024

    # The stored facts and dimension versions equal a recomputation from the raw events;
    # no event_id and no dimension version is stored twice.
    await assert_aggregates_match(direct, dataset.records)
    # The orphans are still there, still referenced by no commit, and their events are
    # stored once all the same: by the restarted worker's own files.
    assert await unreferenced(direct, orphans) == orphans.keys
    stored = await read_facts(
        TableStore.of(direct), org_of(orphans.table_key), date(1970, 1, 1), date(9999, 12, 31),
        columns=["event_id"],
    )  # fmt: skip
    stored_ids = Counter(stored.column("event_id").to_pylist())
    assert all(stored_ids[event_id] == 1 for event_id in orphans.event_ids)
    row.details["aggregates_checked_s"] = round(time.monotonic() - row.started, 1)
    log = dataset.reference_log()
    async with exporter_in_process(direct) as client:
        tally = await verify_exports(
            client, log, requests_for(dataset.orgs, dataset_window(dataset))
        )
    row.exports, row.lost, row.doubled = tally.exports, tally.lost, tally.doubled
    row.details["rows_compared"] = tally.rows
    row.details["exports_checked_s"] = round(time.monotonic() - row.started, 1)
    tally.assert_exact()
    assert tally.exports == len(dataset.orgs) * 5
    assert tally.rows > 0

    invalid = {record.value[:1000] for record in dataset.records if record.kind == "invalid"}
    letters = await read_topic(settings, settings.topic_events_dlq, expected=len(invalid))
    dead = [letter.value[:1000] for letter in letters]
    assert set(dead) == invalid  # each bad event dead-lettered (again, if redelivered)
    row.details["dead_letters"] = len(dead)
