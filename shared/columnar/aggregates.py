"""Pre-aggregated state: a workspace's ``daily`` and ``monthly`` aggregates, exact under
staleness (prototype; not wired into the services yet).

Next to a workspace's ``facts`` table (``shared.columnar.tables``) live two Delta tables::

    {root}/v2/workspaces/{org_id}/daily     AGGREGATE rows, one set per UTC day
    {root}/v2/workspaces/{org_id}/monthly   AGGREGATE rows, one set per UTC calendar month

Their rows are the facts in *aggregated shape* (``queries/agg/shape.sql``): per period
and per shape, groups keyed by what the export queries group or count distinct by, with
``n`` and the sums (money as DECIMAL(38,0): exact whatever the sum). The export queries
of ``queries/agg`` read those rows instead of facts.

**Exact under staleness.** Each period's rows record, in the partition column
``built_from``, the *fingerprint* of the facts they were built from — a hash of the
sorted paths of the facts table's data files of that day (of every day of that month),
taken from the Delta log — and the id of the build. A reader computes the current
fingerprints from its facts snapshot (the log only, no data read); a whole day or month
of the window is read from an aggregate only when its period holds exactly one build and
that build's fingerprint is the current one. Any other whole day (late events appended a
file, compaction rewrote the day, the builder has not run yet) is read from facts and
aggregated on the fly to the same shape, and the window's partial edge days always are,
filtered by ``occurred_ms``. So an export is exactly the facts snapshot it read, however
far behind the builder is: a late event makes its day and month slower, never wrong.

**Builder.** :func:`refresh_aggregates` rebuilds the stale or missing days that ended
before ``now_ms`` (from their facts) and then the stale months that ended before
``now_ms`` (from the daily rows it just verified), each set of periods in one Delta
overwrite whose ``predicate`` names them; it deletes the rows of periods whose facts are
gone (retention). It never needs to be right about timing: two builders racing may both
commit, and a period with two builds is stale for readers until the next refresh.

delta-rs and DuckDB block: the ``*_sync`` functions run in worker threads.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import Final

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pa_ds
import pyarrow.fs as pa_fs
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError
from deltalake.fs import DeltaStorageHandler

from shared.columnar.queries.engine import QueryExport, csv_bytes
from shared.columnar.schema import DIMENSIONS, FACTS
from shared.columnar.tables import FACTS_TABLE, TableStore, workspace_prefix
from shared.contracts.requests import DataType
from shared.domain.export.columns import header as export_header
from shared.domain.export.context import WorkspaceOptions
from shared.domain.window import DAY_MS, day_start_ms

DAILY_TABLE: Final = "daily"
MONTHLY_TABLE: Final = "monthly"
AGGREGATE_TABLES: Final = (DAILY_TABLE, MONTHLY_TABLE)
PARTITION_BY: Final = ["period", "shape", "built_from"]

_MONEY: Final = pa.decimal128(38, 0)
AGGREGATE: Final = pa.schema(
    [
        pa.field("period", pa.date32(), nullable=False),  # the day, or the month's 1st
        pa.field("shape", pa.string(), nullable=False),
        pa.field("built_from", pa.string(), nullable=False),  # "{fingerprint}.{build id}"
        pa.field("user_id", pa.string()),
        pa.field("assistant_id", pa.string()),
        pa.field("project_id", pa.string()),
        pa.field("model", pa.string()),
        pa.field("action", pa.string()),
        pa.field("conversation_id", pa.string()),
        pa.field("api_key_id", pa.string()),
        pa.field("provider", pa.string()),
        pa.field("byok", pa.bool_()),
        pa.field("source", pa.string()),
        pa.field("deployment", pa.string()),
        pa.field("n", pa.int64(), nullable=False),
        pa.field("with_actions", pa.int64()),
        pa.field("requests", pa.int64()),
        pa.field("prompt_tokens", pa.int64()),
        pa.field("completion_tokens", pa.int64()),
        pa.field("cached_tokens", pa.int64()),
        pa.field("creation_tokens", pa.int64()),
        pa.field("cost_nano", _MONEY),
        pa.field("amount_nano", _MONEY),
        pa.field("min_prompt_tokens", pa.int64()),
        pa.field("max_prompt_tokens", pa.int64()),
        pa.field("min_completion_tokens", pa.int64()),
        pa.field("max_completion_tokens", pa.int64()),
    ]
)
#: The columns of the aggregated shape (what the queries read): all but the partitioning.
SHAPE_COLUMNS: Final = tuple(name for name in AGGREGATE.names if name != "built_from")
SHAPE: Final = pa.schema([AGGREGATE.field(name) for name in SHAPE_COLUMNS])
ALL_SHAPES: Final = ("message", "action", "conversation", "api_key", "model", "payg")
#: The shapes each export type's query reads.
SHAPES: Final[dict[DataType, tuple[str, ...]]] = {
    DataType.USERS: ("message", "action", "payg"),
    DataType.ASSISTANTS: ("message", "conversation"),
    DataType.API_KEYS: ("api_key",),
    DataType.PROJECTS: ("message",),
    DataType.MODELS: ("model",),
}
#: The facts columns the shapes are made of.
SHAPE_FACT_COLUMNS: Final = (
    "day", "kind", "occurred_ms", "user_id", "api_key_id", "assistant_id", "project_id",
    "conversation_id", "model", "provider", "byok", "deployment", "source", "actions",
    "requests", "prompt_tokens", "completion_tokens", "cached_tokens", "creation_tokens",
    "cost_nano", "amount_nano",
)  # fmt: skip
_QUERIES: Final = Path(__file__).parent / "queries"
_AGG_QUERY_FILES: Final = {
    DataType.USERS: "users.sql",
    DataType.ASSISTANTS: "agents.sql",
    DataType.API_KEYS: "api_keys.sql",
    DataType.PROJECTS: "projects.sql",
    DataType.MODELS: "models.sql",
}
#: Days rebuilt per Delta commit (bounds the builder's memory to a month of facts).
DAYS_PER_COMMIT: Final = 31
_NO_FACTS: Final = "-"


# ---- periods and fingerprints -------------------------------------------------------------


def month_of(day: date) -> date:
    return day.replace(day=1)


def next_month(month: date) -> date:
    return (month.replace(day=28) + timedelta(days=4)).replace(day=1)


def month_days(month: date) -> list[date]:
    days, day = [], month
    while day.month == month.month:
        days.append(day)
        day += timedelta(days=1)
    return days


def fingerprint(paths: Iterable[str]) -> str:
    """The fingerprint of a set of data files: a hash of their sorted paths."""
    text = "\n".join(sorted(paths))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class FactsFiles:
    """The data files of each UTC day of one facts snapshot (from its Delta log)."""

    paths: Mapping[date, tuple[str, ...]]

    @classmethod
    def of(cls, table: DeltaTable | None) -> FactsFiles:
        if table is None:
            return cls({})
        actions = pa.table(table.get_add_actions(flatten=True))
        found: dict[date, list[str]] = defaultdict(list)
        for path, day in zip(
            actions.column("path").to_pylist(),
            actions.column("partition.day").to_pylist(),
            strict=True,
        ):
            found[day].append(path)
        return cls({day: tuple(sorted(paths)) for day, paths in found.items()})

    def day(self, day: date) -> str:
        """The fingerprint of ``day`` (``"-"``: no facts that day)."""
        paths = self.paths.get(day)
        return fingerprint(paths) if paths else _NO_FACTS

    def month(self, month: date) -> str:
        paths = [path for day in month_days(month) for path in self.paths.get(day, ())]
        return fingerprint(paths) if paths else _NO_FACTS


def builds(table: DeltaTable | None) -> dict[date, set[str]]:
    """Each period of an aggregate table and the ``built_from`` values its files carry."""
    if table is None:
        return {}
    actions = pa.table(table.get_add_actions(flatten=True))
    found: dict[date, set[str]] = defaultdict(set)
    for period, built_from in zip(
        actions.column("partition.period").to_pylist(),
        actions.column("partition.built_from").to_pylist(),
        strict=True,
    ):
        found[period].add(built_from)
    return dict(found)


def is_fresh(built: set[str] | None, current: str) -> bool:
    """Whether a period's builds are exactly one build from the ``current`` fingerprint."""
    if not built or len(built) != 1:
        return False
    return next(iter(built)).split(".", 1)[0] == current


# ---- the plan of a window ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    """Where each part of a window ``[start_ms, end_ms)`` is read from."""

    months: tuple[date, ...]  # whole months, from ``monthly``
    days: tuple[date, ...]  # whole days, from ``daily``
    fact_days: tuple[date, ...]  # stale whole days and the partial edge days, from facts
    skipped: tuple[date, ...] = field(default=())  # days of the window without facts


def plan_window(
    start_ms: int,
    end_ms: int,
    facts: FactsFiles,
    daily: Mapping[date, set[str]],
    monthly: Mapping[date, set[str]],
) -> Plan:
    """Whole fresh months from ``monthly``, the other whole fresh days from ``daily``,
    everything else (stale whole days, partial edge days) from facts."""
    first = date(1970, 1, 1) + timedelta(days=start_ms // DAY_MS)
    last = date(1970, 1, 1) + timedelta(days=(end_ms - 1) // DAY_MS)
    months: list[date] = []
    days: list[date] = []
    fact_days: list[date] = []
    skipped: list[date] = []
    covered: set[date] = set()
    month = month_of(first)
    while month <= last:
        inside = day_start_ms(month) >= start_ms and day_start_ms(next_month(month)) <= end_ms
        current = facts.month(month)
        if inside and current != _NO_FACTS and is_fresh(monthly.get(month), current):
            months.append(month)
            covered.update(month_days(month))
        month = next_month(month)
    day = first
    while day <= last:
        if day not in covered:
            current = facts.day(day)
            whole = day_start_ms(day) >= start_ms and day_start_ms(day) + DAY_MS <= end_ms
            if current == _NO_FACTS:
                skipped.append(day)
            elif whole and is_fresh(daily.get(day), current):
                days.append(day)
            else:
                fact_days.append(day)
        day += timedelta(days=1)
    return Plan(tuple(months), tuple(days), tuple(fact_days), tuple(skipped))


# ---- tables --------------------------------------------------------------------------------


def aggregate_uri(store: TableStore, org_id: str, table: str) -> str:
    if table not in AGGREGATE_TABLES:
        raise ValueError(f"unknown aggregate table {table!r}")
    return f"{store.root}/{workspace_prefix(org_id)}{table}"


def _open(uri: str, store: TableStore) -> DeltaTable | None:
    try:
        return DeltaTable(uri, storage_options=dict(store.options))
    except TableNotFoundError:
        return None


def _open_or_create(uri: str, store: TableStore) -> DeltaTable:
    table = _open(uri, store)
    if table is not None:
        return table
    return DeltaTable.create(
        uri,
        AGGREGATE,
        mode="ignore",
        partition_by=PARTITION_BY,
        storage_options=dict(store.options),
    )


def _actions(table: DeltaTable | None) -> pa.Table | None:
    """The add actions of a table's snapshot (its log only: path, size, partition values)."""
    return None if table is None else pa.table(table.get_add_actions(flatten=True))


def _scan(
    table: DeltaTable,
    store: TableStore,
    files: pa.Table,
    partitions: Sequence[str],
    schema: pa.Schema,
) -> pa.Table:
    """The rows of ``files`` (add actions of ``table``), the ``partitions`` columns filled
    from their partition values. Fragments are made here for the chosen files only:
    ``DeltaTable.to_pyarrow_dataset`` prepares every file of the log (0.3 s at 2,000)."""
    if not files.num_rows:
        return schema.empty_table()
    paths = files.column("path").to_pylist()
    sizes = dict(zip(paths, files.column("size_bytes").to_pylist(), strict=True))
    filesystem = pa_fs.PyFileSystem(
        DeltaStorageHandler(table.table_uri, dict(store.options), known_sizes=sizes)
    )
    parquet = pa_ds.ParquetFileFormat(
        default_fragment_scan_options=pa_ds.ParquetFragmentScanOptions(pre_buffer=True)
    )
    values = {name: files.column(f"partition.{name}").to_pylist() for name in partitions}
    fragments = []
    for number, path in enumerate(paths):
        expression = pc.scalar(True)
        for name in partitions:
            kind = schema.field(name).type
            expression &= pc.field(name) == pa.scalar(values[name][number], kind)
        fragments.append(
            parquet.make_fragment(path, filesystem=filesystem, partition_expression=expression)
        )
    dataset = pa_ds.FileSystemDataset(fragments, schema, parquet, filesystem)
    return dataset.to_table(columns=schema.names).cast(schema)


def _read_periods(
    table: DeltaTable | None,
    store: TableStore,
    periods: Sequence[date],
    shapes: Sequence[str],
) -> pa.Table:
    """The rows of ``periods`` and ``shapes`` of an aggregate table (schema ``SHAPE``)."""
    actions = _actions(table)
    if table is None or actions is None or not periods:
        return SHAPE.empty_table()
    wanted = pc.and_(
        pc.is_in(actions.column("partition.period"), pa.array(periods, pa.date32())),
        pc.is_in(actions.column("partition.shape"), pa.array(shapes, pa.string())),
    )
    return _scan(table, store, actions.filter(wanted), ("period", "shape"), SHAPE)


_SHAPE_FACTS: Final = pa.schema([FACTS.field(name) for name in SHAPE_FACT_COLUMNS])


def _read_fact_days(table: DeltaTable | None, store: TableStore, days: Sequence[date]) -> pa.Table:
    """The facts of ``days`` (columns ``SHAPE_FACT_COLUMNS``)."""
    actions = _actions(table)
    if table is None or actions is None or not days:
        return _SHAPE_FACTS.empty_table()
    wanted = pc.is_in(actions.column("partition.day"), pa.array(days, pa.date32()))
    return _scan(table, store, actions.filter(wanted), ("day",), _SHAPE_FACTS)


@cache
def _sql(name: str) -> str:
    return (_QUERIES / name).read_text(encoding="utf-8")


def _connection() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.register("facts", _SHAPE_FACTS.empty_table())
    con.register("agg", SHAPE.empty_table())
    con.register("dimensions", DIMENSIONS.empty_table())
    con.execute(_sql("cells.sql"))
    con.execute(_sql("agg/shape.sql"))
    return con


def facts_in_shape(
    facts: pa.Table,
    start_ms: int,
    end_ms: int,
    shapes: Sequence[str] = ALL_SHAPES,
    *,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pa.Table:
    """``facts`` (at least ``SHAPE_FACT_COLUMNS``) with ``start_ms <= occurred_ms <
    end_ms``, aggregated per UTC day into the shapes ``shapes`` (schema ``SHAPE``)."""
    mine = con or _connection()
    try:
        mine.register("facts", facts.select(list(SHAPE_FACT_COLUMNS)))
        query = "SELECT * FROM facts_shape($start_ms, $end_ms) WHERE list_contains($shapes, shape)"
        params = {"start_ms": start_ms, "end_ms": end_ms, "shapes": list(shapes)}
        found = mine.sql(query, params=params).to_arrow_table()
    finally:
        mine.unregister("facts")
        if con is None:
            mine.close()
    return _conform(found)


def regroup_by_month(rows: pa.Table, *, con: duckdb.DuckDBPyConnection | None = None) -> pa.Table:
    """Rows in aggregated shape re-aggregated per calendar month (schema ``SHAPE``)."""
    mine = con or _connection()
    try:
        mine.register("agg", rows.select(list(SHAPE_COLUMNS)))
        found = mine.sql("SELECT * FROM regroup()").to_arrow_table()
    finally:
        mine.unregister("agg")
        if con is None:
            mine.close()
    return _conform(found)


def _conform(found: pa.Table) -> pa.Table:
    """DuckDB's result as ``SHAPE``: missing columns null; sums checked into int64."""
    columns = []
    for field_ in SHAPE:
        if field_.name in found.column_names:
            columns.append(found.column(field_.name).cast(field_.type, safe=True))
        else:
            columns.append(pa.nulls(found.num_rows, field_.type))
    return pa.Table.from_arrays(columns, schema=SHAPE)


# ---- the builder ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Refresh:
    """What one :func:`refresh_aggregates` did."""

    days_built: int = 0
    months_built: int = 0
    periods_deleted: int = 0
    facts_rows_read: int = 0
    daily_rows_written: int = 0
    monthly_rows_written: int = 0
    seconds: float = 0.0


def refresh_aggregates_sync(store: TableStore, org_id: str, *, now_ms: int) -> Refresh:
    """Bring the workspace's ``daily`` and ``monthly`` aggregates up to its facts: every day
    (month) that ended by ``now_ms`` and whose aggregate is missing or stale is rebuilt,
    and periods without facts any more lose their rows (blocking; see the module doc)."""
    started = time.monotonic()
    facts_table = _open(store.uri(org_id, FACTS_TABLE), store)
    facts = FactsFiles.of(facts_table)
    daily = _open_or_create(aggregate_uri(store, org_id, DAILY_TABLE), store)
    monthly = _open_or_create(aggregate_uri(store, org_id, MONTHLY_TABLE), store)
    build = uuid.uuid4().hex[:12]
    con = _connection()
    try:
        return _refresh(store, facts_table, facts, daily, monthly, build, con, now_ms, started)
    finally:
        con.close()


def _refresh(
    store: TableStore,
    facts_table: DeltaTable | None,
    facts: FactsFiles,
    daily: DeltaTable,
    monthly: DeltaTable,
    build: str,
    con: duckdb.DuckDBPyConnection,
    now_ms: int,
    started: float,
) -> Refresh:

    daily_builds = builds(daily)
    stale_days = sorted(
        day
        for day in facts.paths
        if day_start_ms(day) + DAY_MS <= now_ms
        and not is_fresh(daily_builds.get(day), facts.day(day))
    )
    facts_rows = daily_rows = 0
    for chunk in _chunks(stale_days, DAYS_PER_COMMIT):
        rows = _read_fact_days(facts_table, store, chunk)
        facts_rows += rows.num_rows
        shaped = facts_in_shape(rows, -(2**62), 2**62, con=con)
        daily_rows += shaped.num_rows
        stamps = {day: f"{facts.day(day)}.{build}" for day in chunk}
        _overwrite(daily, _stamped(shaped, stamps), chunk)

    daily.update_incremental()
    daily_builds = builds(daily)
    monthly_builds = builds(monthly)
    months = sorted({month_of(day) for day in facts.paths})
    stale_months = [
        month
        for month in months
        if day_start_ms(next_month(month)) <= now_ms
        and not is_fresh(monthly_builds.get(month), facts.month(month))
        # Built from daily rows only when every day of the month is fresh in ``daily``.
        and all(
            is_fresh(daily_builds.get(day), facts.day(day))
            for day in month_days(month)
            if day in facts.paths
        )
    ]
    monthly_rows = 0
    for month in stale_months:
        present = [day for day in month_days(month) if day in facts.paths]
        rows = regroup_by_month(_read_periods(daily, store, present, ALL_SHAPES), con=con)
        monthly_rows += rows.num_rows
        _overwrite(monthly, _stamped(rows, {month: f"{facts.month(month)}.{build}"}), [month])

    deleted = 0
    for table, current in ((daily, set(facts.paths)), (monthly, set(months))):
        gone = sorted(set(builds(table)) - current)
        if gone:
            table.delete(_period_predicate(gone))
            deleted += len(gone)
    return Refresh(
        days_built=len(stale_days),
        months_built=len(stale_months),
        periods_deleted=deleted,
        facts_rows_read=facts_rows,
        daily_rows_written=daily_rows,
        monthly_rows_written=monthly_rows,
        seconds=time.monotonic() - started,
    )


async def refresh_aggregates(store: TableStore, org_id: str, *, now_ms: int) -> Refresh:
    """:func:`refresh_aggregates_sync` in a worker thread."""
    return await asyncio.to_thread(refresh_aggregates_sync, store, org_id, now_ms=now_ms)


def _chunks(days: Sequence[date], size: int) -> list[list[date]]:
    return [list(days[start : start + size]) for start in range(0, len(days), size)]


def _stamped(rows: pa.Table, stamps: Mapping[date, str]) -> pa.Table:
    """``rows`` with ``built_from`` set from their period, as ``AGGREGATE``."""
    periods = rows.column("period")
    keys = pa.array(list(stamps), pa.date32())
    values = pa.array(list(stamps.values()), pa.string())
    built_from = pc.take(values, pc.index_in(periods, value_set=keys))
    return rows.append_column("built_from", built_from).select(AGGREGATE.names).cast(AGGREGATE)


def _period_predicate(periods: Sequence[date]) -> str:
    return "period IN (" + ", ".join(f"'{period.isoformat()}'" for period in periods) + ")"


def _overwrite(table: DeltaTable, rows: pa.Table, periods: Sequence[date]) -> None:
    """Replace every row of ``periods`` by ``rows`` in one commit."""
    write_deltalake(
        table,
        rows,
        mode="overwrite",
        predicate=_period_predicate(periods),
        partition_by=PARTITION_BY,
    )


# ---- the reader ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WindowRows:
    """A window's rows in aggregated shape, and where they came from."""

    rows: pa.Table
    plan: Plan
    facts_rows: int


def read_window_sync(
    store: TableStore, org_id: str, start_ms: int, end_ms: int, shapes: Sequence[str]
) -> WindowRows:
    """The rows of ``[start_ms, end_ms)`` in aggregated shape (``SHAPE``), of the shapes
    ``shapes``: exactly the workspace's facts snapshot, however stale the aggregates."""
    facts_table = _open(store.uri(org_id, FACTS_TABLE), store)
    daily = _open(aggregate_uri(store, org_id, DAILY_TABLE), store)
    monthly = _open(aggregate_uri(store, org_id, MONTHLY_TABLE), store)
    plan = plan_window(start_ms, end_ms, FactsFiles.of(facts_table), builds(daily), builds(monthly))
    facts = _read_fact_days(facts_table, store, plan.fact_days)
    parts = [
        _read_periods(monthly, store, plan.months, shapes),
        _read_periods(daily, store, plan.days, shapes),
        facts_in_shape(facts, start_ms, end_ms, shapes),
    ]
    return WindowRows(pa.concat_tables(parts), plan, facts.num_rows)


async def read_window(
    store: TableStore, org_id: str, start_ms: int, end_ms: int, shapes: Sequence[str]
) -> WindowRows:
    return await asyncio.to_thread(read_window_sync, store, org_id, start_ms, end_ms, shapes)


# ---- the export ----------------------------------------------------------------------------


def connect(rows: pa.Table, dimensions: pa.Table) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with ``agg`` (rows in aggregated shape) and ``dimensions``
    registered and the macros of ``cells.sql`` defined."""
    con = _connection()
    con.register("agg", rows)
    con.register("dimensions", dimensions)
    return con


def export_csv(
    con: duckdb.DuckDBPyConnection,
    data_type: DataType,
    *,
    org_id: str,
    group_by: str | None,
    start_ms: int,
    end_ms: int,
    period_start: str,
    period_end: str,
    options: WorkspaceOptions,
) -> QueryExport:
    """``shared.columnar.queries.export_csv`` over the window's aggregated rows (``agg``
    must hold exactly the rows of ``[start_ms, end_ms)``, e.g. :func:`read_window`'s);
    ``options`` as ``settings_of`` finds them."""
    columns = export_header(
        data_type, byok=options.byok, user_level_data=options.user_level_data, group_by=group_by
    )
    query = _sql(f"agg/{_AGG_QUERY_FILES[data_type]}")
    given = {"start_ms": start_ms, "end_ms": end_ms, "group_by": group_by or ""}
    # DuckDB refuses parameters a query does not name (``agg`` is the window already).
    named = re.sub(r"--[^\n]*", "", query)
    parameters = {name: value for name, value in given.items() if f"${name}" in named}
    result = con.sql(query, params=parameters).to_arrow_table()
    fixed = {"period_start": period_start, "period_end": period_end, "org_id": org_id}
    data = csv_bytes(result, columns, group_by=group_by, fixed=fixed)
    return QueryExport(header=columns, rows=result.num_rows, data=data)
