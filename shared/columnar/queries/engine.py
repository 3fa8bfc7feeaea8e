"""Runs an export's query and turns its Arrow result into the bytes of the export's file.

The queries read two relations, ``facts`` (schema ``shared.columnar.schema.FACTS``) and
``dimensions`` (``DIMENSIONS``, every version of the workspace); the facts may hold more
than the window: the queries keep ``$start_ms <= occurred_ms < $end_ms`` themselves.
The facts must already be deduplicated (one row per accepted event), the dimensions one
row per accepted upsert.

Every result column is a string named after its contract column (NULL is an empty
cell); ``subgroup`` is the ``group_by`` column. The rows come out in contract order
(main count descending, then identity ascending by code point), so what is left is the
header, the three fixed columns and the file format (``files``: CSV with its formula guard
and RFC 4180 quoting, gzipped CSV, typed Parquet and NDJSON).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

from shared.columnar.queries.files import file_bytes
from shared.columnar.schema import DIMENSIONS, FACTS, KEY_ROLLUP_ROWS, ROLLUP_ROWS
from shared.contracts.export_formats import ExportFormat
from shared.contracts.export_types import DataType, spec
from shared.domain.export.columns import header as export_header
from shared.domain.export.context import WorkspaceOptions

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
#: then the users export's partial aggregates and the sums per key (which use them).
_MACRO_FILES: Final = ("cells.sql", "user_parts.sql", "key_parts.sql")
#: The roll-up relations a query may read (``shared.columnar.rollups``), empty unless given.
ROLLUP_RELATIONS: Final = {"user_rollups": ROLLUP_ROWS, "key_rollups": KEY_ROLLUP_ROWS}
_base: duckdb.DuckDBPyConnection | None = None
_base_lock: Final = threading.Lock()


def _database() -> duckdb.DuckDBPyConnection:
    """The process's in-memory DuckDB database, with the macros of ``cells.sql`` defined
    once (a definition binds its table macros, so placeholders stand in for the tables)."""
    global _base
    with _base_lock:
        if _base is None:
            base = duckdb.connect()
            base.register("facts", FACTS.empty_table())
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
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with ``facts``, ``dimensions`` and the roll-up relations of
    ``ROLLUP_RELATIONS`` registered, where the macros bind to them: ``rollups`` by name,
    the stored partials of facts files not in ``facts`` (none by default). Each connection
    sees only its own tables (they are views of the connection), so concurrent exports
    each use their own; close it after. A dataset is scanned by the query itself, its
    files read as the query goes (columns and row groups it needs only).

    Connections are cursors of one database: the macros are defined once per process,
    which saves ~25 ms per export."""
    given = dict(rollups or {})
    unknown = given.keys() - ROLLUP_RELATIONS.keys()
    if unknown:
        raise ValueError(f"unknown roll-up relations {sorted(unknown)}")
    base = _database()
    with _base_lock:
        con = base.cursor()
    con.register("facts", facts)
    con.register("dimensions", dimensions)
    for name, schema in ROLLUP_RELATIONS.items():
        con.register(name, given.get(name, schema.empty_table()))
    return con


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
    """The export's rows, in order: one string column per contract column."""
    parameters = {"start_ms": start_ms, "end_ms": end_ms, "group_by": group_by or ""}
    return con.sql(query_text(data_type), params=parameters).to_arrow_table()


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
) -> QueryExport:
    """The export of the window ``[start_ms, end_ms)`` as the bytes of a file in
    ``export_format`` (``files.file_bytes``). ``options`` default to the workspace's
    latest settings in ``dimensions``."""
    if options is None:
        options = workspace_options(con)
    columns = export_header(
        data_type, byok=options.byok, user_level_data=options.user_level_data, group_by=group_by
    )
    result = query_rows(con, data_type, group_by=group_by, start_ms=start_ms, end_ms=end_ms)
    fixed = {"period_start": period_start, "period_end": period_end, "org_id": org_id}
    data = file_bytes(result, columns, export_format, group_by=group_by, fixed=fixed)
    return QueryExport(header=columns, rows=result.num_rows, data=data)
