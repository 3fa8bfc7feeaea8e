"""The OLAP peer of the export benchmark: what a user gets by landing the raw events in
Parquet and querying them with an off-the-shelf engine (DuckDB).

:class:`Landing` takes the records of one workspace while the benchmark produces them
(the simulator's stream, so exactly the topic's content) and keeps every record that is
not malformed — re-sent duplicates included — flattened as a sink would land JSON
(``RAW_EVENTS``: the event's fields as columns, ``usage`` a struct, ``occurred_at`` a
UTC timestamp, money as exact decimals of the number written, ``seq`` the record's
position in the workspace's partition). It writes them in arrival order into a few
Parquet files on local disk (a new file every million rows): one file per simulated day
cost DuckDB about 0.4 s more per query in this benchmark, whatever the size (365 files
to open), which would flatter us.

:func:`export_once` runs ``olap_users.sql`` — dedup by ``event_id`` (first landed wins)
and the users export's counts, sums, distinct counts, count maps and ranks per user —
with a fresh DuckDB connection and writes its result as a CSV file next to the landing,
so a run is "query the files, get the export file" as it would be for the user.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from bench.stats import Summary, percentile
from shared import codec
from shared.simulation import SimRecord

QUERY_PATH: Final = Path(__file__).with_name("olap_users.sql")
_MONEY: Final = pa.decimal128(38, 18)
_TEXT: Final = pa.string()
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)

_ACTIVITY_TEXTS: Final = (
    "user_id", "assistant_id", "project_id", "api_key_id", "conversation_id", "model",
    "provider", "deployment", "source",
)  # fmt: skip
_ATTRIBUTE_TEXTS: Final = (
    "name", "email", "role", "department", "company_name", "license_type", "joined_at",
    "description", "url", "owner_id", "owner_email",
)  # fmt: skip

RAW_EVENTS: Final = pa.schema(
    [
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("event_id", _TEXT),
        pa.field("type", _TEXT),
        pa.field("org_id", _TEXT),
        pa.field("occurred_at", pa.timestamp("ms", tz="UTC")),
        *(pa.field(name, _TEXT) for name in _ACTIVITY_TEXTS),
        pa.field("byok", pa.bool_()),
        pa.field("actions", pa.list_(_TEXT)),
        pa.field("requests", pa.int64()),
        pa.field(
            "usage",
            pa.struct(
                [
                    pa.field("prompt_tokens", pa.int64()),
                    pa.field("completion_tokens", pa.int64()),
                    pa.field("cached_prompt_tokens", pa.int64()),
                    pa.field("cache_creation_tokens", pa.int64()),
                    pa.field("cost_usd", _MONEY),
                ]
            ),
        ),
        *(pa.field(name, _TEXT) for name in _ATTRIBUTE_TEXTS),
        pa.field("payg_limit", _MONEY),
        pa.field("amount", _MONEY),
        pa.field("deleted", pa.bool_()),
        pa.field("user_level_data", pa.bool_()),
    ]
)


def _money(value: Any) -> Decimal | None:
    """The number as written (a JSON number's shortest form), exactly."""
    if value is None:
        return None
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def raw_row(value: bytes, seq: int) -> dict[str, Any]:
    """One record's value as a ``RAW_EVENTS`` row (fields it does not have are null)."""
    row: dict[str, Any] = codec.loads(value)
    row["seq"] = seq
    row["occurred_at"] = (datetime.fromisoformat(row["occurred_at"]) - _EPOCH) // _ONE_MS
    for name in ("payg_limit", "amount"):
        if name in row:
            row[name] = _money(row[name])
    usage = row.get("usage")
    if usage is not None and "cost_usd" in usage:
        usage["cost_usd"] = _money(usage["cost_usd"])
    return row


@dataclass
class Landing:
    """``take`` every record of the stream; the workspace's well-formed ones are landed
    in ``directory`` in arrival order, as Parquet files of ``rows_per_file`` rows (row
    groups of ``row_group`` rows), as a sink that rolls its files by size would;
    ``close`` writes the rest."""

    directory: Path
    org_id: str
    rows_per_file: int = 1_000_000
    row_group: int = 122_880  # DuckDB's own row group size: its unit of parallelism
    rows: int = 0
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0  # spent landing (parse, convert, write)
    _buffer: list[dict[str, Any]] = field(default_factory=list)
    _writer: pq.ParquetWriter | None = None
    _in_file: int = 0

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    def take(self, record: SimRecord) -> None:
        if record.org_id != self.org_id or record.kind == "invalid":
            return
        began = time.perf_counter()
        self._buffer.append(raw_row(record.value, self.rows))
        self.rows += 1
        if len(self._buffer) >= min(self.row_group, self.rows_per_file - self._in_file):
            self._write()
        self.seconds += time.perf_counter() - began

    def close(self) -> None:
        began = time.perf_counter()
        self._write()
        self._close_file()
        self.seconds += time.perf_counter() - began

    def _write(self) -> None:
        if not self._buffer:
            return
        if self._writer is None:
            path = self.directory / f"part-{self.files:05d}.parquet"
            self._writer = pq.ParquetWriter(path, RAW_EVENTS)
            self.files += 1
        self._writer.write_table(pa.Table.from_pylist(self._buffer, schema=RAW_EVENTS))
        self._in_file += len(self._buffer)
        self._buffer = []
        if self._in_file >= self.rows_per_file:
            self._close_file()

    def _close_file(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._in_file = 0
            self.bytes = sum(path.stat().st_size for path in self.directory.glob("*.parquet"))

    def as_dict(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "storage": (
                f"local disk: Parquet (snappy) files of up to {self.rows_per_file:,} rows "
                f"in arrival order, row groups of {self.row_group:,}"
            ),
            "org_id": self.org_id,
            "rows": self.rows,
            "files": self.files,
            "bytes": self.bytes,
            "landing_s": round(self.seconds, 2),
        }


def query_text() -> str:
    return QUERY_PATH.read_text(encoding="utf-8")


def connect(directory: Path) -> duckdb.DuckDBPyConnection:
    """A fresh DuckDB connection with ``raw_events`` over the landed files."""
    con = duckdb.connect()
    con.read_parquet(str(directory / "*.parquet")).create_view("raw_events")
    return con


def _parameters(org_id: str, start_ms: int, end_ms: int) -> dict[str, object]:
    return {
        "org_id": org_id,
        "start": _EPOCH + start_ms * _ONE_MS,
        "end": _EPOCH + end_ms * _ONE_MS,
    }


def users_rows(con: duckdb.DuckDBPyConnection, org_id: str, start_ms: int, end_ms: int) -> pa.Table:
    """The peer's users export of the window ``[start_ms, end_ms)``, as Arrow."""
    return con.sql(query_text(), params=_parameters(org_id, start_ms, end_ms)).to_arrow_table()


def export_once(directory: Path, org_id: str, start_ms: int, end_ms: int, out: Path) -> int:
    """Connect, query the landed files, write the CSV to ``out``; returns its data rows."""
    con = connect(directory)
    target = str(out).replace("'", "''")
    try:
        copied = con.execute(
            f"COPY ({query_text()}) TO '{target}' (HEADER)",
            _parameters(org_id, start_ms, end_ms),
        ).fetchone()
    finally:
        con.close()
    return int(copied[0]) if copied else 0


async def measure(
    landing: Landing, start_ms: int, end_ms: int, runs: int, *, name: str
) -> dict[str, Any]:
    """``runs`` timed runs of :func:`export_once`, one after another: p50/p95
    nearest-rank, as for ours."""
    out = landing.directory.parent / f"{landing.directory.name}-users.csv"
    seconds: list[float] = []
    rows = 0
    for _ in range(runs):
        began = time.perf_counter()
        rows = await asyncio.to_thread(
            export_once, landing.directory, landing.org_id, start_ms, end_ms, out
        )
        seconds.append(time.perf_counter() - began)
    return {
        "name": name,
        "engine": f"DuckDB {duckdb.__version__} (default settings: threads = cores)",
        "query": f"bench/{QUERY_PATH.name}",
        "landing": landing.as_dict(),
        "rows": rows,
        "bytes": out.stat().st_size,
        "seconds": Summary.of(seconds).as_dict(),
        "p50_s": percentile(seconds, 50),
        "p95_s": percentile(seconds, 95),
    }


def ratio(ours: float | None, peer: float | None) -> float | None:
    """ours / peer (below 1: ours is faster); None when either is missing or peer is 0."""
    if ours is None or peer is None or peer <= 0:
        return None
    return ours / peer
