"""The Parquet files of an append, written by this project and committed by delta-rs.

``write_deltalake`` keeps one open file writer per partition until the whole write ends
(≈ 1.3 MB each, measured), so a flush whose rows span a year of days held hundreds of
them; ingest had to commit early once its pending rows spanned 32 days, and a backlog
was committed in many small flushes. Here each partition's rows become one Parquet
file, written into memory and uploaded one after another by a few threads (memory: a
few files, whatever the number of days), and the commit adds them with delta-rs
(``DeltaTable.create_write_transaction``): the same log entry, app transactions and
conflict checks as ``write_deltalake``'s, so a reader sees no difference.

The file layout is delta-rs's: ``{partition}={value}/part-00000-{uuid}-c000.snappy.parquet``
without the partition column, Snappy-compressed, and the add action's statistics as
delta-rs writes them (``numRecords``; ``minValues``/``maxValues`` of every column that
has a value; ``nullCount`` of every column but lists), which the exporter's planning
(a file's ``occurred_ms`` range), the janitor (``day``) and other engines' pruning read.
A file uploaded by a commit that then fails is referenced by no commit: invisible to
every reader until ``vacuum`` deletes it.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date
from typing import Any, Final
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake.transaction import AddAction

#: Files uploaded at once (each upload holds its encoded file).
UPLOAD_THREADS: Final = 8
_POOL: Final = ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="data-files")
_FILESYSTEMS: dict[tuple[str, tuple[tuple[str, str], ...]], pafs.FileSystem] = {}
_FILESYSTEMS_LOCK: Final = threading.Lock()


def filesystem(uri: str, options: Mapping[str, str]) -> tuple[pafs.FileSystem, str]:
    """pyarrow's filesystem for a table ``uri`` (``s3://bucket/...`` or a local path) with
    delta-rs's storage ``options``, and the table's path in it."""
    parts = urlsplit(uri)
    if parts.scheme != "s3":
        return pafs.LocalFileSystem(), uri
    key = (parts.netloc, tuple(sorted(options.items())))
    with _FILESYSTEMS_LOCK:
        found = _FILESYSTEMS.get(key)
        if found is None:
            found = _FILESYSTEMS[key] = _s3(options)
    return found, f"{parts.netloc}{parts.path}"


def _s3(options: Mapping[str, str]) -> pafs.S3FileSystem:
    """The same endpoint, region and keys as delta-rs (absent keys: the AWS default chain)."""
    # Delayed open: a small file is one PutObject, not a multipart upload's three requests;
    # no background writes: the upload is over (stored, or failed) when close returns, in
    # the pool's thread, so no commit can name a file still on its way.
    arguments: dict[str, Any] = {
        "region": options.get("AWS_REGION", "us-east-1"),
        "allow_delayed_open": True,
        "background_writes": False,
    }
    endpoint = options.get("AWS_ENDPOINT_URL")
    if endpoint:
        parts = urlsplit(endpoint)
        arguments["scheme"] = parts.scheme or "https"
        arguments["endpoint_override"] = parts.netloc or endpoint
    if "AWS_ACCESS_KEY_ID" in options:
        arguments["access_key"] = options["AWS_ACCESS_KEY_ID"]
        arguments["secret_key"] = options["AWS_SECRET_ACCESS_KEY"]
    return pafs.S3FileSystem(**arguments)


def write_files(
    data: pa.Table,
    partition_by: Sequence[str],
    *,
    fs: pafs.FileSystem,
    table_path: str,
    modified_ms: int,
) -> list[AddAction]:
    """Write ``data`` as one Parquet file per partition value under ``table_path`` and
    return their add actions (blocking: run it in a thread)."""
    if not data.num_rows:
        return []
    parts: list[tuple[dict[str, str], pa.Table]]
    if partition_by:
        (column,) = partition_by  # one partition column is all the tables have
        data = data.sort_by(column)
        values = data.column(column).combine_chunks()
        ends = [*pc.indices_nonzero(pc.not_equal(values[1:], values[:-1])).to_pylist(), None]
        parts, start = [], 0
        for end in ends:
            stop = data.num_rows if end is None else end + 1
            value = values[start].as_py()
            parts.append(({column: value}, data.slice(start, stop - start).drop_columns([column])))
            start = stop
    else:
        parts = [({}, data)]
    local = isinstance(fs, pafs.LocalFileSystem)

    def upload(path: str, body: pa.Buffer) -> None:
        if local:
            fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        with fs.open_output_stream(path) as out:
            out.write(body)

    # Encoded here, one file at a time (Arrow's allocations stay on this thread); only the
    # uploads, which wait on the store, run in the pool, at most UPLOAD_THREADS * 2 queued.
    actions: list[AddAction] = []
    uploads: deque[Future[None]] = deque()
    for partition, rows in parts:
        folder = "".join(f"{name}={value}/" for name, value in partition.items())
        relative = f"{folder}part-00000-{uuid.uuid4()}-c000.snappy.parquet"
        sink = pa.BufferOutputStream()
        pq.write_table(rows, sink, compression="snappy")
        body = sink.getvalue()
        actions.append(
            AddAction(relative, body.size, partition, modified_ms, True, file_stats(rows))
        )
        if len(uploads) >= 2 * UPLOAD_THREADS:
            uploads.popleft().result()
        uploads.append(_POOL.submit(upload, f"{table_path}/{relative}", body))
    for pending in uploads:
        pending.result()
    return actions


def file_stats(rows: pa.Table) -> str:
    """The add action's ``stats`` of a file holding ``rows``, as delta-rs writes them."""
    minimum: dict[str, Any] = {}
    maximum: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    for name, column in zip(rows.column_names, rows.columns, strict=True):
        if pa.types.is_list(column.type) or pa.types.is_struct(column.type):
            continue
        nulls[name] = column.null_count
        if column.null_count == len(column):
            continue
        bounds = pc.min_max(column)
        minimum[name] = _json_value(bounds["min"].as_py())
        maximum[name] = _json_value(bounds["max"].as_py())
    stats = {"numRecords": rows.num_rows, "minValues": minimum, "maxValues": maximum}
    return json.dumps({**stats, "nullCount": nulls})


def _json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value
