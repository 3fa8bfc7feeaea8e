"""An export query's rows as the bytes of a file, in each format of contract §5.

The query's result has one string column per contract column (NULL or '' is an empty
cell); what is left here is the header, the three fixed columns and the format, all as
vectorized Arrow kernels:

* **CSV**: the ``csv`` module's ``excel`` dialect (``,``, ``"`` quoting only where a cell
  holds a separator, quote, CR or LF, quotes doubled, CRLF line ends), UTF-8 without BOM,
  and a ``'`` before every cell a spreadsheet would run as a formula. **csv.gz**: those
  bytes gzipped (no file name, time 0: the same rows give the same bytes).
* **Parquet** and **NDJSON**: the same columns and rows, typed by each column's kind
  (``shared.domain.export.cell_kinds``): integers ``int64``, money ``decimal(18, 6)``,
  averages and percentages ``decimal(18, 2)``, booleans ``bool``, dates ``date32``, JSON
  and text columns strings (JSON columns hold the CSV's JSON text); every empty cell is
  null; no formula guard. NDJSON writes one object per row, keys in column order,
  numbers as JSON numbers (decimals with their scale's digits), dates as
  ``"YYYY-MM-DD"``, then ``\\n``.
"""

from __future__ import annotations

import gzip
import io
from typing import Final

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shared.contracts.export_formats import ExportFormat
from shared.domain.export.cell_kinds import CellKind, cell_kind

#: What a spreadsheet would run as a formula: such a cell gets a ``'`` prefix.
_FORMULA_START: Final = r"^([=+\-@\t\r])"
#: What the ``csv`` module's excel dialect quotes (QUOTE_MINIMAL).
_NEEDS_QUOTES: Final = '[,"\r\n]'
#: The Arrow type of each kind of cell in the typed formats.
ARROW_TYPES: Final[dict[CellKind, pa.DataType]] = {
    CellKind.TEXT: pa.string(),
    CellKind.JSON: pa.string(),
    CellKind.INTEGER: pa.int64(),
    CellKind.MONEY: pa.decimal128(18, 6),
    CellKind.AVERAGE: pa.decimal128(18, 2),
    CellKind.PERCENTAGE: pa.decimal128(18, 2),
    CellKind.BOOLEAN: pa.bool_(),
    CellKind.DATE: pa.date32(),
}


def file_bytes(
    result: pa.Table,
    columns: list[str],
    export_format: ExportFormat,
    *,
    group_by: str | None,
    fixed: dict[str, str],
) -> bytes:
    """The file of a query's ``result`` in ``export_format``: the ``columns`` in order,
    the ``fixed`` ones (``period_start``, ``period_end``, ``org_id``) filled in; the
    others (``bucket_start`` and ``bucket_end`` included) are ``result``'s."""
    cells = _cells(result, columns, group_by=group_by, fixed=fixed)
    if export_format is ExportFormat.CSV:
        return _csv(columns, cells)
    if export_format is ExportFormat.CSV_GZ:
        return gzip.compress(_csv(columns, cells), mtime=0)
    typed = typed_table(columns, cells)
    if export_format is ExportFormat.PARQUET:
        sink = io.BytesIO()
        pq.write_table(typed, sink, compression="zstd")
        return sink.getvalue()
    return _ndjson(typed)


def csv_bytes(
    result: pa.Table, columns: list[str], *, group_by: str | None, fixed: dict[str, str]
) -> bytes:
    """The CSV file of a query's ``result`` (``file_bytes`` in CSV)."""
    return file_bytes(result, columns, ExportFormat.CSV, group_by=group_by, fixed=fixed)


def _cells(
    result: pa.Table, columns: list[str], *, group_by: str | None, fixed: dict[str, str]
) -> list[pa.Array]:
    """Each column's cells as strings ('' for an empty cell), in ``columns`` order."""
    count = result.num_rows
    cells: list[pa.Array] = []
    for column in columns:
        if column in fixed:
            values = pa.repeat(pa.scalar(fixed[column], pa.string()), count)
        else:
            name = "subgroup" if column == group_by else column
            values = result.column(name).combine_chunks()
        cells.append(pc.fill_null(values.cast(pa.string()), ""))
    return cells


def _csv(columns: list[str], cells: list[pa.Array]) -> bytes:
    lines = [",".join(_csv_cells(pa.array(columns, pa.string())).to_pylist())]
    if cells and len(cells[0]):
        joined = pc.binary_join_element_wise(*(_csv_cells(values) for values in cells), ",")
        lines.extend(joined.to_pylist())
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _csv_cells(text: pa.Array) -> pa.Array:
    """Formula guard, then RFC 4180 quoting only where needed."""
    guarded = pc.replace_substring_regex(text, _FORMULA_START, r"'\1")
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(guarded, '"', '""'), '"', "")
    return pc.if_else(pc.match_substring_regex(guarded, _NEEDS_QUOTES), quoted, guarded)


def typed_table(columns: list[str], cells: list[pa.Array]) -> pa.Table:
    """The cells typed by their columns' kinds, empty cells null. A figure too large for
    its type (money of 10^12 USD or more) fails here rather than being written wrong."""
    arrays = []
    for column, text in zip(columns, cells, strict=True):
        empty = pc.equal(text, "")
        present = pc.if_else(empty, pa.scalar(None, pa.string()), text)
        arrays.append(present.cast(ARROW_TYPES[cell_kind(column)]))
    return pa.Table.from_arrays(arrays, names=columns)


def _ndjson(typed: pa.Table) -> bytes:
    """One JSON object per row, keys in column order."""
    if not typed.num_rows:
        return b""
    members: list[pa.Array] = []
    for index, column in enumerate(typed.column_names):
        values = typed.column(index).combine_chunks()
        key = orjson.dumps(column).decode() + ":"
        members.append(pc.binary_join_element_wise(key, _json_values(values), ""))
    rows = pc.binary_join_element_wise("{", pc.binary_join_element_wise(*members, ","), "}", "")
    return ("\n".join(rows.to_pylist()) + "\n").encode("utf-8")


def _json_values(values: pa.Array) -> pa.Array:
    """Each value as JSON text: numbers and booleans as Arrow writes them, dates and
    strings quoted (strings escaped as orjson does), null as ``null``."""
    kind = values.type
    if pa.types.is_string(kind):
        texts = [None if v is None else orjson.dumps(v).decode() for v in values.to_pylist()]
        return pc.fill_null(pa.array(texts, pa.string()), "null")
    text = values.cast(pa.string())
    if pa.types.is_date(kind):
        text = pc.binary_join_element_wise('"', text, '"', "")
    return pc.fill_null(text, "null")
