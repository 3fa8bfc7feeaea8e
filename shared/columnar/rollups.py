"""Roll-ups: the partial aggregates of each merged month file, which exports add up.

Three derived Delta tables per workspace (``docs/storage.md``, "Roll-ups") hold, for facts
files of month spans, what an export's query computes from that file's facts alone:
``user_rollups`` the users export's partials (``queries/user_parts.sql``, USER_ROLLUPS),
``key_rollups`` the message and API request facts summed per key, which the api_keys,
models and projects exports add up (``queries/key_parts.sql``, KEY_ROLLUPS),
``agent_rollups`` the agent messages per (agent, model, user, conversation), over which
the agents export counts distinct users and conversations and adds up the rest
(``queries/agent_parts.sql``, AGENT_ROLLUPS). Each is partitioned by the roll-up's name:
the facts file it summarizes, or ``merged-…`` for the sum of all month files' roll-ups
(one *merged* roll-up). A 12-month export then reads the year's partials instead of every
fact, and adds the partials of the facts it still reads (the current month's days, a
month the window covers in part, late day files).

**Exact by construction.** A roll-up summarizes immutable data files: it is used only
while those files are in the facts snapshot the export reads, and only when the window
holds every row of each (the files' ``occurred_ms`` statistics in the Delta log); every
other file is read as facts. A file the janitor replaces (a late month merge, retention)
makes its roll-ups unused, never wrong; a missing roll-up only makes an export read facts.
The partials are sums, per-key counts and per-key minima and maxima, so the partials of
disjoint files combine into the partial of their union (a distinct count is the number
of distinct keys among the combined rows).

**Once per file.** A roll-up is committed as an overwrite of its partition: two janitors
that build the same one race on that predicate and one is refused (or replaces the
other's identical rows), so a file's partials are never stored twice. Every roll-up has
one row of part (or kind) ``members`` naming the files it sums, so even a file without
rows of interest has one.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
import threading
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
from deltalake import DeltaTable, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError, TableNotFoundError

from shared.columnar.queries.engine import connect
from shared.columnar.schema import (
    AGENT_COLUMNS,
    AGENT_ROLLUPS,
    DIMENSIONS,
    FACTS,
    KEY_COLUMNS,
    KEY_ROLLUPS,
    MEMBERS,
    MEMBERS_ROW,
    ROLLUP,
    SOURCE,
    SPAN,
    USER_ROLLUPS,
)
from shared.columnar.tables import (
    AGENT_ROLLUPS_TABLE,
    KEY_ROLLUPS_TABLE,
    TXN_CONFLICT,
    USER_ROLLUPS_TABLE,
    projected,
    span_range,
)
from shared.contracts.export_types import DataType, spec
from shared.errors import FencedOut
from shared.lru import LruMap

log = logging.getLogger(__name__)

_MONTH_SPAN_LENGTH: Final = len("YYYY-MM")
MERGED_PREFIX: Final = "merged-"
_ALL_TIME: Final = (-(2**62), 2**62)
_WRITTEN: Final = WriterProperties(max_row_group_size=65_536)


@dataclass(frozen=True, slots=True)
class RollupKind:
    """One roll-up table: its name (also the relation the queries read), the schema of
    its partials, its partition column (the roll-up's name), the column whose value
    ``members`` marks a roll-up's members row, the query of the partials of ``facts``,
    the facts columns that query reads, and the columns partials are combined by (the
    rest are added up, but for columns named ``min_…`` and ``max_…``: see
    :meth:`combined`)."""

    table: str
    rows: pa.Schema
    name: str
    marker: str
    parts: str
    facts_columns: tuple[str, ...]
    keys: tuple[str, ...]

    def combined(self, column: str) -> str:
        """The aggregate that combines the partials of ``column`` (not a key): ``min`` of
        a ``min_…`` column, ``max`` of a ``max_…`` one, else ``sum``."""
        for aggregate in ("min", "max"):
            if column.startswith(f"{aggregate}_"):
                return aggregate
        return "sum"

    @property
    def read_rows(self) -> pa.Schema:
        """What an export's query reads: the partials and their roll-up's name."""
        return self.rows.append(pa.field(self.name, pa.string(), nullable=False))

    @property
    def stored(self) -> pa.Schema:
        """The table's schema: the partials, ``members``, and the partition column."""
        return self.rows.append(pa.field(MEMBERS, pa.list_(pa.string()))).append(
            pa.field(self.name, pa.string(), nullable=False)
        )


# Three literals, every field spelled out (the shapes repeat: that is the table).
USER_PARTS: Final = RollupKind(
    table=USER_ROLLUPS_TABLE,
    rows=USER_ROLLUPS,
    name=SOURCE,
    marker="part",
    parts="SELECT * EXCLUDE (bucket) FROM user_parts($start_ms, $end_ms, false)",
    facts_columns=spec(DataType.USERS).facts_columns,
    keys=("part", "user_id", "subgroup", "key"),
)
KEY_SUMS: Final = RollupKind(
    table=KEY_ROLLUPS_TABLE,
    rows=KEY_ROLLUPS,
    name=ROLLUP,
    marker="kind",
    parts="SELECT * EXCLUDE (bucket) FROM key_parts($start_ms, $end_ms)",
    facts_columns=spec(DataType.MODELS).facts_columns,
    keys=KEY_COLUMNS,
)
AGENT_PARTS: Final = RollupKind(
    table=AGENT_ROLLUPS_TABLE,
    rows=AGENT_ROLLUPS,
    name=ROLLUP,
    marker="kind",
    parts="SELECT * EXCLUDE (bucket) FROM agent_parts($start_ms, $end_ms)",
    facts_columns=spec(DataType.ASSISTANTS).facts_columns,
    keys=AGENT_COLUMNS,
)
ROLLUP_KINDS: Final = (USER_PARTS, KEY_SUMS, AGENT_PARTS)


def rollup_kind(data_type: DataType, group_by: str | None) -> RollupKind | None:
    """The roll-ups an export of ``data_type`` (and ``group_by``) can read: the users
    partials without a subgroup (they are stored per user, not per model), the agent
    messages' partials for agents and the sums per key for API keys, models and projects
    (a key holds every subgroup)."""
    if data_type is DataType.USERS:
        return USER_PARTS if group_by is None else None
    if data_type is DataType.ASSISTANTS:
        return AGENT_PARTS
    return KEY_SUMS


@dataclass(frozen=True, slots=True)
class FactsFile:
    """One facts file of a snapshot: its path in the table, span and time range."""

    path: str
    span: str
    first_ms: int | None
    last_ms: int | None

    @property
    def name(self) -> str:
        """The file's name: the name of its roll-ups."""
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


def rolled_up_sources(kind: RollupKind, rollups: DeltaTable | None) -> frozenset[str]:
    """The roll-ups of ``rollups``'s snapshot: facts file names and ``merged-…`` names."""
    if rollups is None:
        return frozenset()
    actions = pa.table(rollups.get_add_actions(flatten=True))
    if not actions.num_rows:
        return frozenset()
    return frozenset(actions.column(f"partition.{kind.name}").to_pylist())


#: Members of merged roll-ups already read (a merged name is a digest of its members, the
#: same in either table, so an entry never goes stale); bounded like any cache.
_MEMBERS_READ: Final[LruMap[str, frozenset[str]]] = LruMap(4096)
_MEMBERS_LOCK: Final = threading.Lock()


def rollup_members(kind: RollupKind, rollups: DeltaTable | None) -> dict[str, frozenset[str]]:
    """Each roll-up of ``rollups``'s snapshot and the facts file names it sums: a file's
    own roll-up its name; a merged one's read from its members row (once per process)."""
    index: dict[str, frozenset[str]] = {}
    for source in rolled_up_sources(kind, rollups):
        if not source.startswith(MERGED_PREFIX):
            index[source] = frozenset({source})
            continue
        with _MEMBERS_LOCK:
            known = _MEMBERS_READ.get(source)
        if known is None:
            assert rollups is not None
            known = _members_of(kind, rollups, source)
            with _MEMBERS_LOCK:
                _MEMBERS_READ.put(source, known)
        index[source] = known
    return index


def _members_of(kind: RollupKind, rollups: DeltaTable, source: str) -> frozenset[str]:
    """The ``members`` of the roll-up ``source``, from its members row (null in the other
    rows, which costs nothing to read: a list in every row made this read 160 MB)."""
    dataset = rollups.to_pyarrow_dataset(file_pruning_predicate=[(kind.name, "=", source)])
    found = dataset.to_table(columns=[MEMBERS], filter=ds.field(MEMBERS).is_valid())
    return frozenset(found.column(MEMBERS)[0].as_py()) if found.num_rows else frozenset()


def parts_of(kind: RollupKind, facts: pa.Table) -> pa.Table:
    """The partials (``kind.rows``) of ``facts`` (FACTS rows, at least
    ``kind.facts_columns``), by the kind's query (blocking)."""
    con = connect(facts, DIMENSIONS.empty_table())
    try:
        found = con.sql(
            kind.parts, params={"start_ms": _ALL_TIME[0], "end_ms": _ALL_TIME[1]}
        ).to_arrow_table()
    finally:
        con.close()
    return found.cast(kind.rows)  # an int64 overflow fails here, not silently


def open_rollups(
    kind: RollupKind, uri: str, options: dict[str, str], *, create: bool
) -> DeltaTable | None:
    """The roll-up table of ``kind`` at ``uri``; created empty if ``create``, else None
    when it does not exist."""
    try:
        return DeltaTable(uri, storage_options=options)
    except TableNotFoundError:
        if not create:
            return None
    return DeltaTable.create(
        uri,
        kind.stored,
        mode="ignore",
        partition_by=[kind.name],
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


def roll_up(kind: RollupKind, facts: DeltaTable, rollups: DeltaTable, file: FactsFile) -> int:
    """Compute and commit the roll-up of ``file`` (of ``facts``'s snapshot); the number of
    partial rows. Raises :class:`FencedOut` when another janitor committed it meanwhile."""
    schema = pa.schema([FACTS.field(name) for name in kind.facts_columns])
    one = projected(facts.to_pyarrow_dataset(), schema, file.path.__eq__)
    if len(one.files) != 1:
        raise ValueError(f"{file.path} is not a file of the facts snapshot")
    parts = parts_of(kind, one.to_table().cast(schema))
    _store(kind, rollups, parts, file.name, [file.name])
    return int(parts.num_rows)


def merge_rollups(kind: RollupKind, rollups: DeltaTable, members: Collection[str]) -> str:
    """Commit the sum of the roll-ups of ``members`` (facts file names, each with its own
    roll-up in ``rollups``'s snapshot) as one merged roll-up; its name."""
    names = sorted(members)
    dataset = rollups.to_pyarrow_dataset(file_pruning_predicate=[(kind.name, "in", names)])
    found = dataset.to_table(columns=[*kind.rows.names, kind.name])
    if set(found.column(kind.name).unique().to_pylist()) != set(names):
        raise ValueError("a merged roll-up needs the roll-up of every member")
    source = merged_source(names)
    _store(kind, rollups, _summed(kind, found.select(kind.rows.names)), source, names)
    return source


def merged_source(members: Iterable[str]) -> str:
    """The name of the merged roll-up of ``members``: a digest of their names, so the same
    name always means the same members."""
    digest = hashlib.sha256("\n".join(sorted(members)).encode()).hexdigest()[:32]
    return f"{MERGED_PREFIX}{digest}"


def _summed(kind: RollupKind, parts: pa.Table) -> pa.Table:
    """``parts`` (``kind.rows``, members rows left out) combined per key: added up, their
    minima and maxima taken (:meth:`RollupKind.combined`; blocking)."""
    keys = ", ".join(kind.keys)
    sums = ", ".join(
        f"{kind.combined(name)}({name}) AS {name}"
        for name in kind.rows.names
        if name not in kind.keys
    )
    con = duckdb.connect()
    try:
        con.register("parts", parts)
        return (
            con.sql(
                f"SELECT {keys}, {sums} FROM parts "  # noqa: S608 (names of a schema)
                f"WHERE {kind.marker} <> '{MEMBERS_ROW}' GROUP BY ALL"
            )
            .to_arrow_table()
            .cast(kind.rows)
        )
    finally:
        con.close()


def _members_row(kind: RollupKind, members: list[str], source: str) -> pa.Table:
    """The roll-up's members row: ``members`` under the marker value, figures zero (or
    null where the column allows it)."""
    row: dict[str, Any] = {}
    for field in kind.rows:
        if field.name == kind.marker:
            row[field.name] = MEMBERS_ROW
        elif field.nullable:
            row[field.name] = None
        else:
            row[field.name] = "" if pa.types.is_string(field.type) else 0
    return pa.Table.from_pylist([row | {MEMBERS: members, kind.name: source}], kind.stored)


def _store(
    kind: RollupKind, rollups: DeltaTable, parts: pa.Table, source: str, members: list[str]
) -> None:
    """Commit ``parts`` and the members row as the roll-up ``source`` (an overwrite of its
    partition)."""
    count = parts.num_rows
    rows = parts.append_column(
        pa.field(MEMBERS, pa.list_(pa.string())), pa.nulls(count, pa.list_(pa.string()))
    ).append_column(kind.stored.field(kind.name), pa.repeat(pa.scalar(source, pa.string()), count))
    stored = pa.concat_tables([_members_row(kind, members, source), rows.cast(kind.stored)])
    try:
        write_deltalake(
            rollups,
            stored,
            mode="overwrite",
            predicate=f"{kind.name} = '{source}'",
            writer_properties=_WRITTEN,
        )
    except CommitFailedError as exc:
        if TXN_CONFLICT in str(exc).lower():
            raise FencedOut(f"the roll-up {source} was committed meanwhile") from exc
        raise


def forget(kind: RollupKind, rollups: DeltaTable, files: Iterable[FactsFile]) -> int:
    """Delete the roll-ups that sum a file no longer in the facts snapshot (``files``);
    how many went. Such a roll-up is never read, so this only frees space."""
    current = {file.name for file in files}
    index = rollup_members(kind, rollups)
    stale = sorted(source for source, members in index.items() if not members <= current)
    if stale:
        names = ", ".join(f"'{name}'" for name in stale)
        rollups.delete(f"{kind.name} IN ({names})")
    return len(stale)


@dataclass(frozen=True, slots=True)
class RolledUpRead:
    """What an export reads (:func:`rolled_up_read`): the facts files its window does not
    cover whole (or that have no roll-up), and the roll-ups of those it does; datasets
    for the query to scan once the tables' locks are released."""

    facts: ds.Dataset | pa.Table
    rollups: ds.Dataset | pa.Table
    rolled_up_files: int


def rolled_up_read(
    kind: RollupKind,
    facts: DeltaTable | None,
    rollups: DeltaTable | None,
    facts_schema: pa.Schema,
    first_day: date,
    last_day: date,
    start_ms: int,
    end_ms: int,
) -> RolledUpRead:
    """What an export of ``[start_ms, end_ms)`` (UTC days ``first_day..last_day``) reads
    from these snapshots: the roll-up of each file the window covers whole and that has
    one, the facts (``facts_schema``) of every other file of those days (blocking: reads
    the logs)."""
    if facts is None:
        return RolledUpRead(facts_schema.empty_table(), kind.read_rows.empty_table(), 0)
    whole = {file.name: file.path for file in facts_files(facts) if file.within(start_ms, end_ms)}
    chosen = choose(rollup_members(kind, rollups), whole.keys())
    covered = {whole[name] for members in chosen.values() for name in members}
    dataset = facts.to_pyarrow_dataset(file_pruning_predicate=span_range(first_day, last_day))
    rest = projected(dataset, facts_schema, lambda path: path not in covered)
    if rollups is None or not chosen:
        return RolledUpRead(rest, kind.read_rows.empty_table(), 0)
    pruning = [(kind.name, "in", sorted(chosen))]
    partials = projected(rollups.to_pyarrow_dataset(file_pruning_predicate=pruning), kind.read_rows)
    return RolledUpRead(rest, partials, len(covered))


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
