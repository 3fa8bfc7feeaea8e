"""Roll-ups: the users export's partial aggregates of each merged month file.

A third Delta table per workspace, ``user_rollups`` (``docs/storage.md``,
"user_rollups"), holds for facts files of month spans the rows
``queries/user_parts.sql`` computes from that file's facts alone (``USER_ROLLUPS``),
partitioned by ``source``: the file's name; and the sum of all month files' roll-ups as
one *merged* roll-up (``source`` ``merged-`` and a digest of its ``members``). A 12-month
users export then reads the year's partials instead of every message, and adds the
partials of the facts it still reads (the current month's days, a month the window covers
in part, late day files).

**Exact by construction.** A roll-up summarizes one immutable data file: it is used only
while that file is in the facts snapshot the export reads, and only when the window holds
every row of the file (the file's ``occurred_ms`` statistics in the Delta log); every
other file is read as facts. A file the janitor replaces (a late month merge, retention)
makes its roll-up unused, never wrong; a missing roll-up only makes an export read facts.
The partials are sums and per-key counts, so the partials of disjoint files add up to
the partial of their union.

**Once per file.** A roll-up is committed as an overwrite of its ``source`` partition:
two janitors that build the same one race on that predicate and one is refused (or
replaces the other's identical rows), so a file's partials are never stored twice.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
import threading
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Final

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
from deltalake import DeltaTable, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError, TableNotFoundError

from shared.columnar.queries.engine import connect
from shared.columnar.schema import (
    DIMENSIONS,
    FACTS,
    MEMBERS,
    ROLLUP_ROWS,
    SOURCE,
    SPAN,
    STORED_USER_ROLLUPS,
    USER_ROLLUPS,
)
from shared.columnar.tables import TXN_CONFLICT, projected, span_range
from shared.contracts.export_types import DataType, spec
from shared.errors import FencedOut
from shared.lru import LruMap

log = logging.getLogger(__name__)

_MONTH_SPAN_LENGTH: Final = len("YYYY-MM")
MERGED_PREFIX: Final = "merged-"
_EMPTY: Final = {"part": "empty", "subgroup": ""} | dict.fromkeys(USER_ROLLUPS.names[4:], 0)
_SUMMED: Final = """
SELECT part, user_id, subgroup, key,
    sum(messages) AS messages, sum(chat) AS chat, sum(with_assistant) AS with_assistant,
    sum(with_project) AS with_project, sum(with_actions) AS with_actions,
    sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
    sum(cached_tokens) AS cached_tokens, sum(creation_tokens) AS creation_tokens,
    sum(cost_nano) AS cost_nano, sum(amount_nano) AS amount_nano
FROM parts
GROUP BY ALL
"""
_ALL_TIME: Final = (-(2**62), 2**62)
_WRITTEN: Final = WriterProperties(max_row_group_size=65_536)


@dataclass(frozen=True, slots=True)
class FactsFile:
    """One facts file of a snapshot: its path in the table, span and time range."""

    path: str
    span: str
    first_ms: int | None
    last_ms: int | None

    @property
    def name(self) -> str:
        """The file's name: the ``source`` of its roll-up."""
        return posixpath.basename(self.path)

    def within(self, start_ms: int, end_ms: int) -> bool:
        """Whether every row of the file is in ``[start_ms, end_ms)`` (by its statistics)."""
        return (
            self.first_ms is not None
            and self.last_ms is not None
            and start_ms <= self.first_ms
            and self.last_ms < end_ms
        )


def facts_files(facts: DeltaTable) -> list[FactsFile]:
    """The files of ``facts``'s snapshot, from its log (no data file is read)."""
    actions = pa.table(facts.get_add_actions(flatten=True))
    if not actions.num_rows:
        return []
    columns = actions.column_names
    first = actions.column("min.occurred_ms") if "min.occurred_ms" in columns else None
    last = actions.column("max.occurred_ms") if "max.occurred_ms" in columns else None
    paths = actions.column("path").to_pylist()
    spans = actions.column(f"partition.{SPAN}").to_pylist()
    firsts = first.to_pylist() if first is not None else [None] * len(paths)
    lasts = last.to_pylist() if last is not None else [None] * len(paths)
    return [
        FactsFile(path, span, _ms(low), _ms(high))
        for path, span, low, high in zip(paths, spans, firsts, lasts, strict=True)
    ]


def _ms(value: object) -> int | None:
    return value if isinstance(value, int) else None


def rolled_up_sources(rollups: DeltaTable | None) -> frozenset[str]:
    """The roll-ups of ``rollups``'s snapshot: facts file names and ``merged-…`` names."""
    if rollups is None:
        return frozenset()
    actions = pa.table(rollups.get_add_actions(flatten=True))
    if not actions.num_rows:
        return frozenset()
    return frozenset(actions.column(f"partition.{SOURCE}").to_pylist())


#: Members of merged roll-ups already read (a merged source's name is a digest of its
#: members, so an entry never goes stale); bounded like any cache.
_MEMBERS_READ: Final[LruMap[str, frozenset[str]]] = LruMap(4096)
_MEMBERS_LOCK: Final = threading.Lock()


def rollup_members(rollups: DeltaTable | None) -> dict[str, frozenset[str]]:
    """Each roll-up of ``rollups``'s snapshot and the facts file names it sums: a file's
    own roll-up its name; a merged one's read from its ``members`` column (once per
    process)."""
    index: dict[str, frozenset[str]] = {}
    for source in rolled_up_sources(rollups):
        if not source.startswith(MERGED_PREFIX):
            index[source] = frozenset({source})
            continue
        with _MEMBERS_LOCK:
            known = _MEMBERS_READ.get(source)
        if known is None:
            assert rollups is not None
            dataset = rollups.to_pyarrow_dataset(file_pruning_predicate=[(SOURCE, "=", source)])
            first = dataset.head(1, columns=[MEMBERS]).column(MEMBERS).to_pylist()
            known = frozenset(first[0]) if first else frozenset()
            with _MEMBERS_LOCK:
                _MEMBERS_READ.put(source, known)
        index[source] = known
    return index


def user_parts(facts: pa.Table) -> pa.Table:
    """The partials (``USER_ROLLUPS``) of ``facts`` (FACTS rows, at least the users
    export's columns), by ``queries/user_parts.sql`` (blocking)."""
    con = connect(facts, DIMENSIONS.empty_table())
    try:
        found = con.sql(
            "SELECT * FROM user_parts($start_ms, $end_ms, false)",
            params={"start_ms": _ALL_TIME[0], "end_ms": _ALL_TIME[1]},
        ).to_arrow_table()
    finally:
        con.close()
    return found.cast(USER_ROLLUPS)  # an int64 overflow fails here, not silently


def open_rollups(uri: str, options: dict[str, str], *, create: bool) -> DeltaTable | None:
    """The ``user_rollups`` table at ``uri``; created empty if ``create``, else None when
    it does not exist."""
    try:
        return DeltaTable(uri, storage_options=options)
    except TableNotFoundError:
        if not create:
            return None
    return DeltaTable.create(
        uri,
        STORED_USER_ROLLUPS,
        mode="ignore",
        partition_by=[SOURCE],
        storage_options=options,
        configuration={"delta.checkpointInterval": "10"},
    )


def month_files(files: Iterable[FactsFile]) -> list[FactsFile]:
    """The files of month spans (the janitor's merged months) among ``files``."""
    return [file for file in files if len(file.span) == _MONTH_SPAN_LENGTH]


def missing(files: Iterable[FactsFile], sources: Collection[str]) -> list[FactsFile]:
    """The month files of ``files`` without a roll-up among ``sources``."""
    return [file for file in month_files(files) if file.name not in sources]


@dataclass(frozen=True, slots=True)
class Pending:
    """The roll-ups a snapshot still lacks: its month files' own, and the merged roll-up
    of all of them (``merged``: its members; empty when it exists or there is one month)."""

    files: list[FactsFile]
    merged: list[str]

    def __bool__(self) -> bool:
        return bool(self.files or self.merged)


def pending(files: Iterable[FactsFile], sources: Collection[str]) -> Pending:
    """What the janitor has left to roll up for a facts snapshot's ``files``, given the
    roll-ups ``sources`` that exist."""
    months = month_files(files)
    names = sorted(file.name for file in months)
    merged = names if len(names) > 1 and merged_source(names) not in sources else []
    return Pending([file for file in months if file.name not in sources], merged)


def roll_up(facts: DeltaTable, rollups: DeltaTable, file: FactsFile) -> int:
    """Compute and commit the roll-up of ``file`` (of ``facts``'s snapshot); the number of
    partial rows. Raises :class:`FencedOut` when another janitor committed it meanwhile."""
    dataset = facts.to_pyarrow_dataset()
    assert isinstance(dataset, ds.FileSystemDataset)
    fragments = [f for f in dataset.get_fragments() if f.path == file.path]
    if len(fragments) != 1:
        raise ValueError(f"{file.path} is not a file of the facts snapshot")
    one = ds.FileSystemDataset(fragments, dataset.schema, dataset.format, dataset.filesystem)
    columns = list(spec(DataType.USERS).facts_columns)
    rows = one.to_table(columns=columns)
    parts = user_parts(rows.cast(pa.schema([FACTS.field(name) for name in columns])))
    _store(rollups, parts, file.name, [file.name])
    return int(parts.num_rows)


def merge_rollups(rollups: DeltaTable, members: Collection[str]) -> str:
    """Commit the sum of the roll-ups of ``members`` (facts file names, each with its own
    roll-up in ``rollups``'s snapshot) as one merged roll-up; its source name."""
    names = sorted(members)
    dataset = rollups.to_pyarrow_dataset(file_pruning_predicate=[(SOURCE, "in", names)])
    found = dataset.to_table(columns=[*USER_ROLLUPS.names, SOURCE])
    if set(found.column(SOURCE).unique().to_pylist()) != set(names):
        raise ValueError("a merged roll-up needs the roll-up of every member")
    summed = _summed(found.select(USER_ROLLUPS.names))
    source = merged_source(names)
    _store(rollups, summed, source, names)
    return source


def merged_source(members: Iterable[str]) -> str:
    """The source name of the merged roll-up of ``members``: a digest of their names, so
    the same name always means the same members."""
    digest = hashlib.sha256("\n".join(sorted(members)).encode()).hexdigest()[:32]
    return f"{MERGED_PREFIX}{digest}"


def _summed(parts: pa.Table) -> pa.Table:
    """``parts`` (USER_ROLLUPS) added up per (part, user, subgroup, key) (blocking)."""
    con = duckdb.connect()
    try:
        con.register("parts", parts)
        return con.sql(_SUMMED).to_arrow_table().cast(USER_ROLLUPS)
    finally:
        con.close()


def _store(rollups: DeltaTable, parts: pa.Table, source: str, members: list[str]) -> None:
    """Commit ``parts`` as the roll-up ``source`` (an overwrite of its partition). A file
    without users activity gets one row of part ``empty`` (ignored by the query), so that
    its roll-up exists."""
    if not parts.num_rows:
        parts = pa.Table.from_pylist([_EMPTY], schema=USER_ROLLUPS)
    count = parts.num_rows
    stored = parts.append_column(
        STORED_USER_ROLLUPS.field(MEMBERS),
        pa.repeat(pa.scalar(members, pa.list_(pa.string())), count),
    ).append_column(
        STORED_USER_ROLLUPS.field(SOURCE), pa.repeat(pa.scalar(source, pa.string()), count)
    )
    try:
        write_deltalake(
            rollups,
            stored,
            mode="overwrite",
            predicate=f"{SOURCE} = '{source}'",
            writer_properties=_WRITTEN,
        )
    except CommitFailedError as exc:
        if TXN_CONFLICT in str(exc).lower():
            raise FencedOut(f"the roll-up {source} was committed meanwhile") from exc
        raise


def forget(rollups: DeltaTable, files: Iterable[FactsFile]) -> int:
    """Delete the roll-ups that sum a file no longer in the facts snapshot (``files``);
    how many went. Such a roll-up is never read, so this only frees space."""
    current = {file.name for file in files}
    index = rollup_members(rollups)
    stale = sorted(source for source, members in index.items() if not members <= current)
    if stale:
        names = ", ".join(f"'{name}'" for name in stale)
        rollups.delete(f"{SOURCE} IN ({names})")
    return len(stale)


@dataclass(frozen=True, slots=True)
class UsersRead:
    """What a users export reads (:func:`users_read`): the facts files its window does not
    cover whole (or that have no roll-up), and the roll-ups of those it does; datasets
    for the query to scan once the tables' locks are released."""

    facts: ds.Dataset | pa.Table
    rollups: ds.Dataset | pa.Table
    rolled_up_files: int


def users_read(
    facts: DeltaTable | None,
    rollups: DeltaTable | None,
    first_day: date,
    last_day: date,
    start_ms: int,
    end_ms: int,
) -> UsersRead:
    """What a users export of ``[start_ms, end_ms)`` (UTC days ``first_day..last_day``)
    reads from these snapshots: the roll-up of each file the window covers whole and
    that has one, the facts of every other file of those days (blocking: reads the log)."""
    schema = pa.schema([FACTS.field(name) for name in spec(DataType.USERS).facts_columns])
    if facts is None:
        return UsersRead(schema.empty_table(), ROLLUP_ROWS.empty_table(), 0)
    whole = {file.name: file.path for file in facts_files(facts) if file.within(start_ms, end_ms)}
    chosen = choose(rollup_members(rollups), whole.keys())
    covered = {whole[name] for members in chosen.values() for name in members}
    dataset = facts.to_pyarrow_dataset(file_pruning_predicate=span_range(first_day, last_day))
    assert isinstance(dataset, ds.FileSystemDataset)
    fragments = [f for f in dataset.get_fragments() if f.path not in covered]
    rest = ds.FileSystemDataset(fragments, schema, dataset.format, dataset.filesystem)
    if rollups is None or not chosen:
        return UsersRead(rest, ROLLUP_ROWS.empty_table(), 0)
    pruning = [(SOURCE, "in", sorted(chosen))]
    partials = projected(rollups.to_pyarrow_dataset(file_pruning_predicate=pruning), ROLLUP_ROWS)
    return UsersRead(rest, partials, len(covered))


def choose(
    index: Mapping[str, frozenset[str]], whole: Collection[str]
) -> dict[str, frozenset[str]]:
    """The roll-ups to read for the files ``whole`` (those the window holds entirely):
    ones whose members are all among them, no file twice, the largest first (a merged
    roll-up of every closed month before the months' own)."""
    wanted = set(whole)
    chosen: dict[str, frozenset[str]] = {}
    taken: set[str] = set()
    for source, members in sorted(index.items(), key=lambda item: (-len(item[1]), item[0])):
        if members and members <= wanted and members.isdisjoint(taken):
            chosen[source] = members
            taken |= members
    return chosen
