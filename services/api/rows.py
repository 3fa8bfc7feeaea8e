"""The ``/json`` variants: an export file's rows as JSON objects, within size bounds.

Cells stay strings exactly as in the CSV (numbers, booleans and JSON columns as written
there, formula-guard quote included), so no value changes meaning between the two forms.
"""

from __future__ import annotations

import asyncio
import csv
import io

from services.api.responses import summary_fields
from services.api.schemas import RowsData, RowsResponse
from shared.adapters.object_store import ObjectStore
from shared.contracts.completions import CompletionData


class TooLarge(Exception):
    """The file is above the inline bounds: the caller should use the file route."""


class FileMissing(Exception):
    """The export file is gone from the store (expired by a lifecycle rule)."""


def parse_rows(body: bytes) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.reader(io.StringIO(body.decode("utf-8"), newline=""))
    header = next(reader, [])
    return header, [dict(zip(header, row, strict=False)) for row in reader]


def check_bounds(data: CompletionData, *, max_rows: int, max_bytes: int) -> None:
    if data.recordCount > max_rows or data.bytes > max_bytes:
        raise TooLarge(
            f"The export has {data.recordCount} rows ({data.bytes} bytes); inline JSON is "
            f"limited to {max_rows} rows and {max_bytes} bytes. Use the file route "
            "(without /json) and download the CSV from downloadUrl."
        )


async def rows_body(
    data: CompletionData, exports: ObjectStore, *, max_rows: int, max_bytes: int
) -> RowsResponse:
    check_bounds(data, max_rows=max_rows, max_bytes=max_bytes)
    stored = await exports.get(data.filePath)
    if stored is None:
        raise FileMissing(f"the export file {data.filePath} no longer exists")
    columns, rows = await asyncio.to_thread(parse_rows, stored.body)
    return RowsResponse(
        success=True, data=RowsData(columns=columns, rows=rows, **summary_fields(data))
    )
