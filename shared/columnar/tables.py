"""A workspace's Delta Lake tables (storage format 3, ``docs/storage.md``).

Each workspace has two tables in the aggregates bucket, written with ``deltalake``
(delta-rs) and readable by any Delta reader::

    s3://{aggregates_bucket}/v3/workspaces/{org_id}/facts        FACTS, partitioned by span
    s3://{aggregates_bucket}/v3/workspaces/{org_id}/dimensions   DIMENSIONS

A facts file holds one UTC day's rows (span ``YYYY-MM-DD``: what ingest appends) or a
whole UTC month's (span ``YYYY-MM``: what the janitor merges a closed month into, sorted
by ``occurred_ms``), so a 12-month read opens about a file a month plus the current
month's days, not one a day. A day's facts are in its day span and its month span.

**Commit = exactly once.** :meth:`WorkspaceTables.append` adds a flush's rows in one
Delta commit per table, and that commit carries the Kafka position each source partition
reached as a Delta *app transaction* (``app_id = "{topic}:{partition}"``, ``version`` =
the next offset to read). So a table's recorded version for a partition says exactly
which records it holds: every record of that partition with ``offset < version``. A
writer skips, per table, the records below that table's version (:class:`Positions`).

**Order.** Dimensions are committed first, then facts. A crash between the two commits
leaves the dimensions ahead of the facts; replaying the partition from Kafka's committed
offset re-applies each record only to the table whose version is still below it, so the
facts that missed their commit land once and the dimensions are not doubled. Readers in
between see dimension versions whose activity is not visible yet — the state of a topic
read a little less far — never a fact whose entity version is missing.

**Fencing.** A commit is made against the snapshot the writer read its positions from.
delta-rs refuses it (``Concurrent transaction failed``) when a commit since that snapshot
recorded an app id it records too. Every commit records its partitions' ids and also
``WRITER_APP_ID``, so *any* commit since the snapshot refuses it: a zombie, the loser of
a rebalance race, or a writer of another partition of the same workspace gets
:class:`~shared.errors.FencedOut` and nothing of its batch is visible (its data files stay
orphaned, referenced by no commit, until ``vacuum``). It refreshes, drops what the
winner holds (positions, and event ids: dedup sees the winner's ids before it commits
again) and retries. A position must also advance: committing a version not above the
snapshot's would record a batch that is already durable.

delta-rs blocks; every call runs in a worker thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Final, TypeVar
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import CommitProperties, DeltaTable, Transaction
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError
from deltalake.transaction import AddAction, RemoveAction

from shared.adapters.object_store import ObjectStore
from shared.clock import Clock, system_clock
from shared.columnar.data_files import filesystem, write_files
from shared.columnar.schema import (
    DIMENSIONS,
    FACTS,
    SPAN,
    STORED_FACTS,
    day_span,
    month_span,
    spans_of,
    with_spans,
)
from shared.contracts.ids import is_valid_id
from shared.errors import FencedOut, RetriableError
from shared.lru import LruMap
from shared.settings import Settings

#: The prefix of every format-3 object in the aggregates bucket.
ROOT: Final = "v3/workspaces/"
FACTS_TABLE: Final = "facts"
DIMENSIONS_TABLE: Final = "dimensions"
#: The janitor's roll-ups of merged month files (``shared.columnar.rollups``).
USER_ROLLUPS_TABLE: Final = "user_rollups"
KEY_ROLLUPS_TABLE: Final = "key_rollups"
AGENT_ROLLUPS_TABLE: Final = "agent_rollups"
ROLLUP_TABLES: Final = (USER_ROLLUPS_TABLE, KEY_ROLLUPS_TABLE, AGENT_ROLLUPS_TABLE)
#: Dimensions first: see the module docstring.
COMMIT_ORDER: Final = (DIMENSIONS_TABLE, FACTS_TABLE)
#: What a writer hands over (the span column is added on the way in).
_SCHEMAS: Final = {FACTS_TABLE: FACTS, DIMENSIONS_TABLE: DIMENSIONS}
_STORED: Final = {FACTS_TABLE: STORED_FACTS, DIMENSIONS_TABLE: DIMENSIONS}
_PARTITIONS: Final[dict[str, list[str]]] = {FACTS_TABLE: ["span"], DIMENSIONS_TABLE: []}
#: In every delta-rs refusal of a commit that lost to another (lower-cased): an app id
#: recorded since, or data this commit read that another one removed.
TXN_CONFLICT: Final = "concurrent transaction"
#: Recorded by every commit, to serialize a workspace's writers (see ``_commit``).
WRITER_APP_ID: Final = "usage-export:writer"

#: A checkpoint every 10 commits (Delta's default is 100): opening a table reads its last
#: checkpoint and the commits after it, one request each (6-9 ms against the store).
_TABLE_CONFIGURATION: Final[dict[str, str | None]] = {"delta.checkpointInterval": "10"}

#: When a whole table's facts are streamed, the files are opened this many at a time (a
#: fragment keeps its file's Parquet metadata once read: tens of KB a file) ...
_FILES_PER_SCAN: Final = 256
#: ... in batches of at most this many rows.
_SCAN_BATCH_ROWS: Final = 65_536
_PARQUET: Final = ds.ParquetFileFormat()

#: What a store call may raise while the object store is unavailable: retried by callers.
#: (delta-rs reports object-store failures as OSError or DeltaError.)
STORE_ERRORS: Final = (RetriableError, OSError, DeltaError)

_Planned = TypeVar("_Planned")

#: A Kafka source partition: (topic, partition).
TopicPartition = tuple[str, int]


def storage_options(settings: Settings) -> dict[str, str]:
    """delta-rs (object_store) options for the configured S3 endpoint. ``conditional_put``
    makes each commit an ``If-None-Match`` PUT of the next log entry: the atomic commit."""
    options = {
        "AWS_ENDPOINT_URL": settings.s3_endpoint,
        "AWS_REGION": settings.s3_region,
        "conditional_put": "etag",
    }
    if settings.s3_access_key is not None and settings.s3_secret_key is not None:
        # Unset: delta-rs's default chain (AWS_* variables, web identity, instance profile).
        options["AWS_ACCESS_KEY_ID"] = settings.s3_access_key.get_secret_value()
        options["AWS_SECRET_ACCESS_KEY"] = settings.s3_secret_key.get_secret_value()
    if settings.s3_endpoint.startswith("http://"):
        options["AWS_ALLOW_HTTP"] = "true"
    return options


@dataclass(frozen=True, slots=True)
class TableStore:
    """Where the workspaces' tables live: ``root`` is ``s3://{bucket}`` in a deployment, or
    a local directory (unit tests, one-machine experiments); ``options`` are delta-rs's."""

    root: str
    options: Mapping[str, str]
    #: Stamps the data files' modification time (the Delta add action's).
    clock: Clock = field(default=system_clock, compare=False)

    @classmethod
    def of(cls, settings: Settings) -> TableStore:
        """The aggregates bucket of ``settings``."""
        return cls(f"s3://{settings.aggregates_bucket}", storage_options(settings))

    @classmethod
    def local(cls, directory: str) -> TableStore:
        return cls(directory.rstrip("/"), {})

    def uri(self, org_id: str, table: str) -> str:
        if table not in _SCHEMAS and table not in ROLLUP_TABLES:
            raise ValueError(f"unknown table {table!r}")
        return f"{self.root}/{workspace_prefix(org_id)}{table}"


def workspace_prefix(org_id: str) -> str:
    """``v3/workspaces/{org_id}/``; refuses an id that could climb out of it."""
    if not is_valid_id(org_id):
        raise ValueError(f"refusing to build a table path from org id {org_id!r}")
    return f"{ROOT}{org_id}/"


async def workspace_ids(store: ObjectStore) -> list[str]:
    """The workspaces with format-3 tables in the aggregates bucket ``store``, sorted."""
    return sorted(_last_segment(prefix) for prefix in await store.list_prefixes(ROOT))


def _last_segment(prefix: str) -> str:
    return prefix.rstrip("/").rsplit("/", 1)[-1]


def app_id(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


@dataclass(frozen=True, slots=True)
class Positions:
    """Each table's recorded next offset per source partition (absent: none recorded)."""

    facts: Mapping[TopicPartition, int]
    dimensions: Mapping[TopicPartition, int]

    def holds(self, table: str, source: TopicPartition, offset: int) -> bool:
        """Whether ``table`` already holds what the record at ``offset`` contributes."""
        recorded = (self.facts if table == FACTS_TABLE else self.dimensions).get(source)
        return recorded is not None and offset < recorded


@dataclass(frozen=True, slots=True)
class Appended:
    """What :meth:`WorkspaceTables.append` committed: the facts files it added (paths
    relative to the table), and whether the snapshot now also holds a fenced commit made
    after it (another writer's rows, whose ids the caller has not seen)."""

    facts_files: frozenset[str]
    others_after: bool


class WorkspaceTables:
    """One workspace's facts and dimensions tables, as of the snapshot last loaded.

    Use :meth:`open`. Writes go through one object per writer; :meth:`positions` and
    :meth:`append` work on the same snapshot, which :meth:`refresh` moves to the latest
    commit (do that after :class:`FencedOut`). Reads always load the latest commit.
    """

    def __init__(self, store: TableStore, org_id: str, tables: Mapping[str, DeltaTable]) -> None:
        self.store = store
        self.org_id = org_id
        self._tables = dict(tables)
        self._lock = asyncio.Lock()
        self._files_cache: tuple[int, dict[str, list[str]]] | None = None

    @classmethod
    async def open(cls, store: TableStore, org_id: str) -> WorkspaceTables:
        """The workspace's tables, created (empty) if they do not exist yet."""
        options = dict(store.options)

        def load(name: str) -> DeltaTable:
            uri = store.uri(org_id, name)
            try:
                return DeltaTable(uri, storage_options=options)
            except TableNotFoundError:
                pass
            try:
                return DeltaTable.create(
                    uri,
                    _STORED[name],
                    mode="ignore",
                    partition_by=_PARTITIONS[name] or None,
                    storage_options=options,
                    configuration=_TABLE_CONFIGURATION,
                )
            except DeltaError:
                # Another writer created it between our look and our create: its version 0
                # won the conditional PUT. Anything else fails again here.
                return DeltaTable(uri, storage_options=options)

        tables = {name: await asyncio.to_thread(load, name) for name in _SCHEMAS}
        return cls(store, org_id, tables)

    def uri(self, table: str) -> str:
        return self.store.uri(self.org_id, table)

    def versions(self) -> dict[str, int]:
        """The Delta version of each table's snapshot."""
        return {name: table.version() for name, table in self._tables.items()}

    async def refresh(self) -> None:
        """Move the snapshot to each table's latest commit."""
        async with self._lock:
            for table in self._tables.values():
                await asyncio.to_thread(table.update_incremental)

    async def facts(
        self, first_day: date, last_day: date, columns: Sequence[str] | None = None
    ) -> pa.Table:
        """Like :func:`read_facts`, as of this object's snapshot (no log read)."""
        table = self._tables[FACTS_TABLE]
        return await asyncio.to_thread(facts_of, table, first_day, last_day, columns)

    async def facts_on(self, days: Collection[date], columns: Sequence[str]) -> pa.Table:
        """The facts of the given UTC days (any set of them), as of this snapshot, with a
        ``day`` column: only the files of those days' spans are opened."""
        wanted = ["day", *(name for name in columns if name != "day")]

        def read() -> pa.Table:
            schema = pa.schema([FACTS.field(name) for name in wanted])
            if not days:
                return schema.empty_table()
            by_span = self._files_by_span()
            spans = {span for day in days for span in spans_of(day, day)}
            paths = [path for span in sorted(spans) for path in by_span.get(span, ())]
            in_days = ds.field("day").isin(pa.array(sorted(days), pa.date32()))
            # Month files are sorted by time: row-group statistics skip the other days.
            return self._files(paths, schema).to_table(filter=in_days)

        return await asyncio.to_thread(read)

    def facts_batches(
        self, columns: Sequence[str], paths: Collection[str] | None = None
    ) -> Iterator[pa.RecordBatch]:
        """The given columns of this snapshot's committed facts files (only those of
        ``paths`` if given, see :meth:`facts_files`), in batches of at most ``_SCAN_BATCH_ROWS``
        rows (blocking: run it in a thread). The files are opened ``_FILES_PER_SCAN`` at a
        time: a file's fragment keeps its Parquet metadata once read, tens of KB a file."""
        every = [path for found in self._files_by_span().values() for path in found]
        chosen = every if paths is None else [path for path in every if path in paths]
        missed = 0 if paths is None else len(paths) - len(chosen)
        if missed:  # a path missed would be ids missing from an index
            raise ValueError(f"{missed} of the files are not in the snapshot")
        schema = pa.schema([FACTS.field(name) for name in columns])
        for first in range(0, len(chosen), _FILES_PER_SCAN):
            group = self._files(chosen[first : first + _FILES_PER_SCAN], schema)
            yield from group.to_batches(batch_size=_SCAN_BATCH_ROWS)

    def _files(self, paths: Sequence[str], schema: pa.Schema) -> ds.FileSystemDataset:
        """These facts files (paths relative to the table) as a dataset of ``schema``'s
        columns, built from the paths alone (delta-rs's dataset of a whole snapshot costs
        ~100 KB a file to build: hundreds of MB for a year of day files)."""
        fs, root = filesystem(self.uri(FACTS_TABLE), self.store.options)
        fragments = [
            _PARQUET.make_fragment(f"{root}/{unquote(path)}", filesystem=fs) for path in paths
        ]
        return ds.FileSystemDataset(fragments, schema, _PARQUET, fs)

    def _files_by_span(self) -> dict[str, list[str]]:
        """This snapshot's facts files by span, read from its add actions once a version."""
        table = self._tables[FACTS_TABLE]
        version = table.version()
        cached = self._files_cache
        if cached is None or cached[0] != version:
            actions = pa.table(table.get_add_actions(flatten=True))
            by_span: dict[str, list[str]] = {}
            if actions.num_rows:
                spans = actions.column(f"partition.{SPAN}").to_pylist()
                for span, path in zip(spans, actions.column("path").to_pylist(), strict=True):
                    by_span.setdefault(span, []).append(path)
            cached = self._files_cache = (version, by_span)
        return cached[1]

    def facts_files(self) -> frozenset[str]:
        """The paths (relative to the table) of this snapshot's facts files."""
        return frozenset(path for found in self._files_by_span().values() for path in found)

    def positions(self, sources: Iterable[TopicPartition]) -> Positions:
        """What the snapshot records as durable for each of ``sources`` (per table).

        Delta keeps app transactions by id, so the caller names the partitions it reads.
        """
        found: dict[str, dict[TopicPartition, int]] = {name: {} for name in _SCHEMAS}
        for source in sources:
            for name, table in self._tables.items():
                version = table.transaction_version(app_id(*source))
                if version is not None:
                    found[name][source] = version
        return Positions(facts=found[FACTS_TABLE], dimensions=found[DIMENSIONS_TABLE])

    async def append(
        self,
        facts: pa.Table,
        dimensions: pa.Table,
        positions: Mapping[TopicPartition, int],
    ) -> Appended:
        """Commit a flush: the dimensions, then the facts, each in one commit that records
        ``positions`` (source partition -> next offset). A table with no rows is not
        committed (its version stays below; replay finds nothing for it there).

        Afterwards the snapshot is each table's latest commit, which may hold commits made
        after this one: the janitor's span rewrites (no new ids), or another writer's
        (:attr:`Appended.others_after`: a caller that dedups must catch up on their ids).

        Raises :class:`FencedOut` when another writer committed to the table since this
        snapshot (whatever its partitions: the caller's dedup must see the ids it added),
        or when a position did not advance past the snapshot's; commits of the other
        table already made stand (they are exactly what their own positions say).
        """
        rows = {DIMENSIONS_TABLE: dimensions, FACTS_TABLE: facts}
        for name, data in rows.items():
            self._check_rows(name, data)
        rows[FACTS_TABLE] = with_spans(facts)
        if not positions:
            raise ValueError("a commit must record the positions it covers")
        appended = Appended(frozenset(), others_after=False)
        async with self._lock:
            for name in COMMIT_ORDER:
                if rows[name].num_rows:
                    paths, others_after = await self._commit(name, rows[name], positions)
                    appended = Appended(
                        paths if name == FACTS_TABLE else appended.facts_files,
                        others_after=appended.others_after or others_after,
                    )
        return appended

    def _check_rows(self, name: str, data: pa.Table) -> None:
        if not data.schema.equals(_SCHEMAS[name]):
            raise ValueError(f"{name} rows must have the {name.upper()} schema, not {data.schema}")
        if data.num_rows and not pc.all(pc.equal(data["org_id"], self.org_id)).as_py():
            raise ValueError(f"{name} rows of another workspace than {self.org_id!r}")

    async def _commit(
        self, name: str, data: pa.Table, positions: Mapping[TopicPartition, int]
    ) -> tuple[frozenset[str], bool]:
        """Write and commit ``data``; the paths added, and whether the latest snapshot holds
        another fenced commit after this one."""
        table = self._tables[name]
        for source, next_offset in positions.items():
            recorded = table.transaction_version(app_id(*source))
            if recorded is not None and next_offset <= recorded:
                raise FencedOut(
                    f"{self.uri(name)}: {app_id(*source)} is already recorded at {recorded}; "
                    f"a commit up to {next_offset} would apply records twice"
                )
        transactions = [Transaction(app_id(*tp), offset) for tp, offset in positions.items()]
        # Every writer's commit also records WRITER_APP_ID: delta-rs refuses a commit when
        # one since its snapshot recorded an app id it records too, so two writers of the
        # workspace are serialized, and the loser refreshes and dedups against the winner.
        fence = table.version() + 1
        transactions.append(Transaction(WRITER_APP_ID, fence))
        properties = CommitProperties(app_transactions=transactions)
        fs, path = filesystem(self.uri(name), self.store.options)
        modified_ms = int(self.store.clock().timestamp() * 1000)
        partition_by = _PARTITIONS[name]

        def write_and_commit() -> list[AddAction]:
            actions = write_files(
                data, partition_by, fs=fs, table_path=path, modified_ms=modified_ms
            )
            table.create_write_transaction(
                list[AddAction | RemoveAction](actions),
                mode="append",
                schema=table.schema(),
                partition_by=partition_by or None,
                commit_properties=properties,
            )
            return actions

        try:
            actions = await asyncio.to_thread(write_and_commit)
        except CommitFailedError as exc:
            if TXN_CONFLICT in str(exc).lower():
                raise FencedOut(
                    f"{self.uri(name)}: another writer committed since version "
                    f"{table.version()}; nothing of this batch was committed to {name}"
                ) from exc
            raise
        # The commit leaves the object's snapshot where it was: move it to the latest. A
        # fenced commit after this one (a writer's, a replay's) recorded another number.
        await asyncio.to_thread(table.update_incremental)
        others_after = table.transaction_version(WRITER_APP_ID) != fence
        return frozenset(action.path for action in actions), others_after


def _open_for_reading(store: TableStore, org_id: str, table: str) -> DeltaTable | None:
    try:
        return DeltaTable(store.uri(org_id, table), storage_options=dict(store.options))
    except TableNotFoundError:
        return None


async def read_facts(
    store: TableStore,
    org_id: str,
    first_day: date,
    last_day: date,
    columns: Sequence[str] | None = None,
) -> pa.Table:
    """The committed facts of the UTC days ``first_day`` to ``last_day`` (inclusive), as of
    the latest commit; no rows for a workspace without tables.

    Only the files of those days' partitions that the Delta log references are read
    (the data folder is never listed, so orphans of failed writes are never seen).
    """
    return await asyncio.to_thread(
        facts_of, _open_for_reading(store, org_id, FACTS_TABLE), first_day, last_day, columns
    )


def facts_of(
    table: DeltaTable | None, first_day: date, last_day: date, columns: Sequence[str] | None
) -> pa.Table:
    """The facts of the days ``first_day..last_day`` in ``table``'s snapshot (blocking)."""
    wanted, schema = _facts_columns(columns)
    if table is None:
        return schema.empty_table()
    dataset = table.to_pyarrow_dataset(file_pruning_predicate=span_range(first_day, last_day))
    in_days = (ds.field("day") >= first_day) & (ds.field("day") <= last_day)
    return dataset.to_table(columns=wanted, filter=in_days).cast(schema)


def projected(
    dataset: ds.Dataset, schema: pa.Schema, keep: Callable[[str], bool] | None = None
) -> ds.FileSystemDataset:
    """``dataset``'s files (those whose path ``keep`` accepts, all by default) seen through
    ``schema`` (some of its columns): a scan reads those files and columns only, whatever
    the query asks for."""
    assert isinstance(dataset, ds.FileSystemDataset)
    fragments = [f for f in dataset.get_fragments() if keep is None or keep(f.path)]
    return ds.FileSystemDataset(fragments, schema, dataset.format, dataset.filesystem)


def _facts_columns(columns: Sequence[str] | None) -> tuple[list[str], pa.Schema]:
    wanted = list(columns) if columns is not None else FACTS.names
    unknown = set(wanted) - set(FACTS.names)
    if unknown:
        raise ValueError(f"unknown facts columns {sorted(unknown)}")
    return wanted, pa.schema([FACTS.field(name) for name in wanted])


def span_range(first_day: date, last_day: date) -> list[tuple[str, str, str]]:
    """The files that may hold facts of ``first_day..last_day``: the days' own and their
    months' merged ones. In span order ('2026-04' < '2026-04-01' < ... < '2026-05'), every
    span from the first day's month to the last day; that includes the first month's days
    before the first, whose rows the caller's filter on ``day`` drops, as it drops a month
    file's other days (skipping its row groups by their statistics)."""
    return [("span", ">=", month_span(first_day)), ("span", "<=", day_span(last_day))]


async def newest_fact_day(store: TableStore, org_id: str) -> date | None:
    """The newest UTC day with committed facts in the workspace (None without any), from
    the Delta log's file list alone: no data file is read."""

    def newest() -> date | None:
        table = _open_for_reading(store, org_id, FACTS_TABLE)
        if table is None:
            return None
        actions = pa.table(table.get_add_actions(flatten=True))
        if actions.num_rows == 0:
            return None
        # Each file's statistics (in the log) name its newest day, whatever its span.
        found = pc.max(pc.cast(actions.column("max.day"), pa.date32())).as_py()
        return found if isinstance(found, date) else None

    return await asyncio.to_thread(newest)


async def read_dimensions(store: TableStore, org_id: str) -> pa.Table:
    """Every committed dimension version of the workspace (none without tables)."""

    def read() -> pa.Table:
        table = _open_for_reading(store, org_id, DIMENSIONS_TABLE)
        return DIMENSIONS.empty_table() if table is None else table.to_pyarrow_table()

    found = await asyncio.to_thread(read)
    return found.cast(DIMENSIONS)


#: The tables of a workspace that exports read: dimensions, facts and roll-ups.
_READ_TABLES: Final = (DIMENSIONS_TABLE, FACTS_TABLE, *ROLLUP_TABLES)


class LatestTables:
    """Readers' tables, kept open between reads: each read first moves a workspace's
    table to its latest commit, which reads only the commits since the last read (opening
    a table reads its checkpoint and every commit after it). At most ``capacity``
    workspaces are kept, least recently read dropped first. Reads see the latest commit
    as :func:`read_facts` and :func:`read_dimensions` do."""

    def __init__(self, store: TableStore, capacity: int = 256) -> None:
        self.store = store
        self.capacity = capacity
        self._open: LruMap[tuple[str, str], DeltaTable] = LruMap(capacity * len(_READ_TABLES))
        # One per table ever read (never dropped: a lock in use must stay the only one).
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def _latest(self, key: tuple[str, str]) -> DeltaTable | None:
        """The table ``key`` moved to its latest commit (opened on first use), or None
        without a table; call with the key's lock held."""
        found = self._open.get(key)
        if found is None:
            found = await asyncio.to_thread(_open_for_reading, self.store, *key)
            if found is not None:
                self._open.put(key, found)
        else:
            await asyncio.to_thread(found.update_incremental)
        return found

    async def _dataset(
        self, org_id: str, table: str, pruning: list[tuple[str, str, str]] | None
    ) -> ds.Dataset | None:
        """The latest snapshot's files (those ``pruning`` selects), or None without a
        table. The snapshot is taken under the key's lock; the files are read after."""

        def files(found: DeltaTable | None) -> ds.Dataset | None:
            return (
                None if found is None else found.to_pyarrow_dataset(file_pruning_predicate=pruning)
            )

        return await self.planned(org_id, [table], files)

    async def planned(
        self, org_id: str, tables: Sequence[str], plan: Callable[..., _Planned]
    ) -> _Planned:
        """``plan`` run in a worker thread on the latest snapshots of the workspace's
        ``tables`` (in that order; None for a table that does not exist), under their
        locks: it picks the files to read, which are read after (the snapshots move on)."""
        async with contextlib.AsyncExitStack() as held:
            snapshots: list[DeltaTable | None] = []
            for table in tables:
                key = (org_id, table)
                await held.enter_async_context(self._locks.setdefault(key, asyncio.Lock()))
                snapshots.append(await self._latest(key))
            return await asyncio.to_thread(plan, *snapshots)

    async def open(self, org_id: str) -> None:
        """Open the workspace's tables (and its roll-ups) ahead of their first read (the
        exporter does at start): what the first read would pay, the log's checkpoint and
        later commits."""
        for table in _READ_TABLES:
            await self._dataset(org_id, table, None)

    async def facts(
        self, org_id: str, first_day: date, last_day: date, columns: Sequence[str]
    ) -> pa.Table:
        """Like :func:`read_facts`."""
        wanted, schema = _facts_columns(columns)
        dataset = await self._dataset(org_id, FACTS_TABLE, span_range(first_day, last_day))
        if dataset is None:
            return schema.empty_table()
        in_days = (ds.field("day") >= first_day) & (ds.field("day") <= last_day)
        found = await asyncio.to_thread(dataset.to_table, columns=wanted, filter=in_days)
        return found.cast(schema)

    async def facts_scan(
        self, org_id: str, first_day: date, last_day: date, columns: Sequence[str]
    ) -> ds.Dataset | pa.Table:
        """The facts files that may hold the UTC days ``first_day..last_day`` as of the
        latest commit, as a dataset of ``columns`` for an engine to scan (streaming: it
        filters the rows itself); no rows without a table."""
        _, schema = _facts_columns(columns)
        dataset = await self._dataset(org_id, FACTS_TABLE, span_range(first_day, last_day))
        return schema.empty_table() if dataset is None else projected(dataset, schema)

    async def dimensions(self, org_id: str) -> pa.Table:
        """Like :func:`read_dimensions`."""
        dataset = await self._dataset(org_id, DIMENSIONS_TABLE, None)
        if dataset is None:
            return DIMENSIONS.empty_table()
        found = await asyncio.to_thread(dataset.to_table, columns=DIMENSIONS.names)
        return found.cast(DIMENSIONS)
