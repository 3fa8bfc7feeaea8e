"""Runs an export's query and turns its Arrow result into the bytes of the export's file.

The queries read two relations, ``facts`` (schema ``shared.columnar.schema.FACTS``) and
``dimensions`` (``DIMENSIONS``, every version of the workspace); the facts may hold more
than the window: the queries keep ``$start_ms <= occurred_ms < $end_ms`` themselves.
The facts must already be deduplicated (one row per accepted event), the dimensions one
row per accepted upsert.

Every result column is a string named after its contract column (NULL is an empty
cell); ``subgroup`` is the ``group_by`` column; ``bucket`` is the row's bucket and
``active`` (boolean) tells whether the row had activity in it; ``nano_*`` are money
columns' exact nano-dollars (none of those four is in the file). The rows come out in
contract order (bucket, then main count descending, then identity ascending by code
point), so what is left is the header, the fixed columns and the file format (``files``:
CSV with its formula guard and RFC 4180 quoting, gzipped CSV, typed Parquet and NDJSON).

Every fact has a ``bucket`` (contract §3, ``bucket``): ``facts`` is a view of the given
facts that adds it, from the relation ``bucket_slots`` (slot, bucket): buckets start and
end on quarter hours, so each quarter hour since the epoch (``occurred_ms // 900000``)
lies in one bucket, and a hash join on it puts every fact of the window in its bucket.
The queries group by bucket as they group by subgroup. Without buckets every fact is in
bucket 0 (no join).

A bucketed export keeps the rows with activity (existing entities without any are in
bucket 0, inactive) and carries the rounding of its money cells from bucket to bucket
(:func:`carry_rounding`), so that they add up to the unbucketed cells. Ranks are per
bucket, over its rows: the rows left out have no activity, so every count of theirs is 0
and no rank of a kept row changes (a competition rank counts the rows with a strictly
greater count).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

from shared.columnar.queries.files import file_bytes
from shared.columnar.schema import (
    AGENT_ROLLUP_ROWS,
    DIMENSIONS,
    FACTS,
    KEY_ROLLUP_ROWS,
    ROLLUP_ROWS,
)
from shared.contracts.export_buckets import BUCKET_COLUMNS
from shared.contracts.export_formats import ExportFormat
from shared.contracts.export_types import DataType, spec
from shared.domain.buckets import Bucket
from shared.domain.export.columns import header as export_header
from shared.domain.export.context import WorkspaceOptions
from shared.domain.window import QUARTER_MS

_HERE: Final = Path(__file__).parent
_SETTINGS_QUERY: Final = """
SELECT
    coalesce(CAST(json_extract(attributes, '$.byok') AS BOOLEAN), false) AS byok,
    coalesce(CAST(json_extract(attributes, '$.user_level_data') AS BOOLEAN), true)
        AS user_level_data
FROM dimensions
WHERE kind = 'settings'
ORDER BY occurred_ms DESC, event_id DESC
LIMIT 1
"""


@cache
def query_text(data_type: DataType) -> str:
    """The SQL of one export type (a file of this package)."""
    return (_HERE / spec(data_type).query_file).read_text(encoding="utf-8")


#: Macros defined once per process: the cell formats and relations every query shares,
#: then the users export's partial aggregates, the sums per key and the agent messages'
#: partials (which use them).
_MACRO_FILES: Final = ("cells.sql", "user_parts.sql", "key_parts.sql", "agent_parts.sql")
#: The roll-up relations a query may read (``shared.columnar.rollups``), empty unless given.
ROLLUP_RELATIONS: Final = {
    "user_rollups": ROLLUP_ROWS,
    "key_rollups": KEY_ROLLUP_ROWS,
    "agent_rollups": AGENT_ROLLUP_ROWS,
}
#: The quarter hours of each bucket (``connect``).
BUCKET_SLOTS: Final = pa.schema([("slot", pa.int64()), ("bucket", pa.int64())])
_FACTS_VIEW: Final = (
    "CREATE TEMP VIEW facts AS SELECT *, CAST(0 AS BIGINT) AS bucket FROM facts_input"
)
#: Every fact with its bucket: the bucket of its quarter hour (900,000 ms, QUARTER_MS).
_BUCKETED_FACTS_VIEW: Final = """
CREATE TEMP VIEW facts AS
SELECT f.*, s.bucket
FROM facts_input AS f JOIN bucket_slots AS s ON s.slot = f.occurred_ms // 900000
"""
_base: duckdb.DuckDBPyConnection | None = None
_base_lock: Final = threading.Lock()


def _database() -> duckdb.DuckDBPyConnection:
    """The process's in-memory DuckDB database, with the macros of ``cells.sql`` defined
    once (a definition binds its table macros, so placeholders stand in for the tables)."""
    global _base
    with _base_lock:
        if _base is None:
            base = duckdb.connect()
            base.register("facts_input", FACTS.empty_table())
            base.execute(_FACTS_VIEW)
            base.register("dimensions", DIMENSIONS.empty_table())
            for name, schema in ROLLUP_RELATIONS.items():
                base.register(name, schema.empty_table())
            for macros in _MACRO_FILES:
                base.execute((_HERE / macros).read_text(encoding="utf-8"))
            _base = base
        return _base


def warm_engine() -> None:
    """Define the macros and run every export query once on no rows (blocking): the
    first real export then finds DuckDB's database, its threads and its query paths warm."""
    con = connect(FACTS.empty_table(), DIMENSIONS.empty_table())
    try:
        for data_type in DataType:
            query_rows(con, data_type, group_by=None, start_ms=0, end_ms=1)
    finally:
        con.close()


def connect(
    facts: pa.Table | ds.Dataset,
    dimensions: pa.Table,
    rollups: Mapping[str, pa.Table | ds.Dataset] | None = None,
    buckets: Sequence[Bucket] = (),
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with ``facts`` (each with its bucket), ``dimensions`` and the
    roll-up relations of ``ROLLUP_RELATIONS`` registered, where the macros bind to them:
    ``rollups`` by name, the stored partials of facts files not in ``facts`` (none by
    default); ``buckets`` tiling the window (none: every fact in bucket 0; roll-ups count
    in bucket 0, so they go only with no buckets). Each connection sees only its
    own tables (they are views of the connection), so concurrent exports each use their
    own; close it after. A dataset is scanned by the query itself, its files read as the
    query goes (columns and row groups it needs only).

    Connections are cursors of one database: the macros are defined once per process,
    which saves ~25 ms per export."""
    given = dict(rollups or {})
    unknown = given.keys() - ROLLUP_RELATIONS.keys()
    if unknown:
        raise ValueError(f"unknown roll-up relations {sorted(unknown)}")
    if given and buckets:
        raise ValueError("roll-ups count in bucket 0: a bucketed export reads facts only")
    base = _database()
    with _base_lock:
        con = base.cursor()
    con.register("facts_input", facts)
    if buckets:
        con.register("bucket_slots", bucket_slots(buckets))
        con.execute(_BUCKETED_FACTS_VIEW)
    else:
        con.execute(_FACTS_VIEW)
    con.register("dimensions", dimensions)
    for name, schema in ROLLUP_RELATIONS.items():
        con.register(name, given.get(name, schema.empty_table()))
    return con


def bucket_slots(buckets: Sequence[Bucket]) -> pa.Table:
    """Each quarter hour of the buckets and its bucket's index (BUCKET_SLOTS)."""
    slots, indexes = [], []
    for index, bucket in enumerate(buckets):
        first, end = bucket.start_ms // QUARTER_MS, bucket.end_ms // QUARTER_MS
        slots.append(pa.array(range(first, end), pa.int64()))
        indexes.append(pa.repeat(pa.scalar(index, pa.int64()), end - first))
    return pa.table(
        [pa.concat_arrays(slots or [pa.array([], pa.int64())]),
         pa.concat_arrays(indexes or [pa.array([], pa.int64())])],
        schema=BUCKET_SLOTS,
    )  # fmt: skip


def workspace_options(con: duckdb.DuckDBPyConnection) -> WorkspaceOptions:
    """The latest settings version, whatever the window (``WorkspaceOptions.latest``)."""
    found = con.execute(_SETTINGS_QUERY).fetchone()
    if found is None:
        return WorkspaceOptions()
    return WorkspaceOptions(byok=bool(found[0]), user_level_data=bool(found[1]))


def query_rows(
    con: duckdb.DuckDBPyConnection,
    data_type: DataType,
    *,
    group_by: str | None,
    start_ms: int,
    end_ms: int,
) -> pa.Table:
    """The export's rows, in order: one string column per contract column, and
    ``bucket``, ``active`` and the ``nano_*`` columns."""
    parameters = {"start_ms": start_ms, "end_ms": end_ms, "group_by": group_by or ""}
    return con.sql(query_text(data_type), params=parameters).to_arrow_table()


def bucketed_rows(
    con: duckdb.DuckDBPyConnection,
    rows: pa.Table,
    data_type: DataType,
    buckets: Sequence[Bucket],
) -> pa.Table:
    """The rows of a bucketed export from its query's (``con`` connected with these
    ``buckets``): those with activity, each with its bucket's ``bucket_start`` and
    ``bucket_end`` (local dates), money carried over (:func:`carry_rounding`)."""
    rows = rows.filter(rows.column("active"))
    index = rows.column("bucket")
    for name, days in zip(
        BUCKET_COLUMNS,
        ([b.first_day for b in buckets], [b.last_day for b in buckets]),
        strict=True,
    ):
        dates = pa.array([day.isoformat() for day in days], pa.string())
        rows = rows.append_column(name, dates.take(index))
    return carry_rounding(con, rows, data_type)


#: The result columns naming a row's entity (the row is the entity and its ``subgroup``).
_ENTITY: Final = {
    DataType.USERS: ("user_id",),
    DataType.ASSISTANTS: ("assistant_id",),
    DataType.API_KEYS: ("api_key_id",),
    DataType.PROJECTS: ("project_id",),
    DataType.MODELS: ("name", "provider", "bring_your_keys"),
}
#: Money columns that hold one figure per entity, repeated on each of its subgroup rows.
_PER_ENTITY: Final = frozenset({"payg_consumption_in_period"})
_NANO: Final = "nano_"
_CARRY: Final = """
WITH once AS (
    SELECT *, CASE WHEN row_number() OVER (PARTITION BY {keys}, bucket) = 1
                   THEN CAST({nano} AS HUGEINT) ELSE 0 END AS once
    FROM bucket_rows
),
through AS (
    SELECT *, sum(once) OVER (PARTITION BY {keys} ORDER BY bucket
                              RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS through
    FROM once
)
SELECT * EXCLUDE (once, through) REPLACE (
    money((half_even_div(through, 1000)
           - half_even_div(through - CAST({nano} AS HUGEINT), 1000)) * 1000) AS {column})
FROM through
ORDER BY row_index
"""


def carry_rounding(con: duckdb.DuckDBPyConnection, rows: pa.Table, data_type: DataType) -> pa.Table:
    """Money cells of bucket rows (with ``bucket``) rounded so that they add up: a
    row's cell is its figure through its bucket rounded, less its figure through the
    previous bucket rounded (amounts are never negative), each within 0.000001 of the
    bucket's own amount; the sum over an entity's buckets is its figure over the whole
    window rounded, the unbucketed export's cell. A figure per entity (the users' payg)
    runs over the entity's buckets once, whatever its number of subgroup rows."""
    entity = list(_ENTITY[data_type])
    rows = rows.append_column("row_index", pa.array(range(len(rows)), pa.int64()))
    for nano in [name for name in rows.column_names if name.startswith(_NANO)]:
        column = nano.removeprefix(_NANO)
        keys = entity if column in _PER_ENTITY else [*entity, "subgroup"]
        query = _CARRY.format(
            keys=", ".join(f'"{key}"' for key in keys), nano=f'"{nano}"', column=f'"{column}"'
        )
        con.register("bucket_rows", rows)
        try:
            rows = con.sql(query).to_arrow_table()
        finally:
            con.unregister("bucket_rows")
    return rows


@dataclass(frozen=True, slots=True)
class QueryExport:
    """One export's file (its header's columns, rows, bytes); no rows means the
    exporter's 404."""

    header: list[str]
    rows: int
    data: bytes


def export_file(
    con: duckdb.DuckDBPyConnection,
    data_type: DataType,
    *,
    org_id: str,
    group_by: str | None,
    start_ms: int,
    end_ms: int,
    period_start: str,
    period_end: str,
    options: WorkspaceOptions | None = None,
    export_format: ExportFormat = ExportFormat.CSV,
    buckets: Sequence[Bucket] = (),
) -> QueryExport:
    """The export of the window ``[start_ms, end_ms)`` as the bytes of a file in
    ``export_format`` (``files.file_bytes``), cut into ``buckets`` if any (they tile the
    window: ``shared.domain.buckets``; ``con`` must have been connected with them).
    ``options`` default to the workspace's latest settings in ``dimensions``."""
    if options is None:
        options = workspace_options(con)
    columns = export_header(
        data_type,
        byok=options.byok,
        user_level_data=options.user_level_data,
        group_by=group_by,
        bucketed=bool(buckets),
    )
    result = query_rows(con, data_type, group_by=group_by, start_ms=start_ms, end_ms=end_ms)
    if buckets:
        result = bucketed_rows(con, result, data_type, buckets)
    fixed = {"period_start": period_start, "period_end": period_end, "org_id": org_id}
    data = file_bytes(result, columns, export_format, group_by=group_by, fixed=fixed)
    return QueryExport(header=columns, rows=result.num_rows, data=data)
