"""RFC 4180 CSV, streamed: rows in, UTF-8 chunks out to a byte sink, with the formula guard.

The ``csv`` module's ``excel`` dialect is RFC 4180: ``,`` separators, ``"`` quoting only
where needed (separator, quote, CR or LF inside a cell; quotes doubled), CRLF line ends.
No BOM: the contract says UTF-8, and a BOM would become part of the first header name
for most non-spreadsheet readers.

Rows are encoded into a small text buffer that is handed to the sink whenever it passes
``flush_chars``, so memory stays flat however many rows are written; the writer yields
to the event loop every few hundred rows so that one large export never starves the
others (or the consumer's heartbeats) sharing the loop.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from shared.domain.export.cells import FORMULA_STARTS, guard


class ByteSink(Protocol):
    async def write(self, data: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class CsvSummary:
    """What the completion reports about the file (``rows`` excludes the header)."""

    rows: int
    bytes: int
    sha256: str


async def write_csv(
    header: list[str],
    rows: Iterable[list[str]],
    sink: ByteSink,
    *,
    flush_chars: int = 256 * 1024,
    yield_every: int = 256,
) -> CsvSummary:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, dialect="excel")
    digest = hashlib.sha256()
    size = 0
    count = 0

    async def flush() -> None:
        nonlocal size
        data = buffer.getvalue().encode("utf-8")
        buffer.seek(0)
        buffer.truncate()
        if data:
            digest.update(data)
            size += len(data)
            await sink.write(data)

    writer.writerow([guard(cell) for cell in header])
    for row in rows:
        # ``guard`` inlined: this runs for every cell of the file.
        writer.writerow(["'" + cell if cell.startswith(FORMULA_STARTS) else cell for cell in row])
        count += 1
        if buffer.tell() >= flush_chars:
            await flush()
        if count % yield_every == 0:
            await asyncio.sleep(0)
    await flush()
    return CsvSummary(rows=count, bytes=size, sha256=digest.hexdigest())
