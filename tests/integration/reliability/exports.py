"""Exports compared, cell by cell, with the oracle (``tests.reference``), and the lost /
double-counted figures derived from them.

``lost`` and ``doubled`` are counted in units the exports carry for every event: messages
(users export, ``messages_total``) and model requests (API-key export, ``requests``), per
entity, as ``max(0, expected - exported)`` and ``max(0, exported - expected)``. Every other
cell is compared too; any difference is a mismatch.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from services.exporter.app import run_exporter
from shared.adapters.export_client import ExportClient, export_request
from shared.adapters.s3 import S3ObjectStore
from shared.clock import system_clock
from shared.contracts.completions import ExportCompletion
from shared.settings import Settings
from tests.integration.reliability.streams import Dataset
from tests.reference import EventLog, ReferenceResult, RequestRejected, reference_request

EXPORT_TYPES = ("users", "assistants", "api_keys", "projects", "models")
COUNTED = {"users": "messages_total", "api_keys": "requests"}
ID_COLUMNS = {
    "users": ("user_id",),
    "assistants": ("assistant_id",),
    "api_keys": ("api_key_id",),
    "projects": ("project_id",),
    "models": ("name", "provider", "bring_your_keys"),
}


@dataclass(frozen=True)
class Window:
    from_date: str
    to_date: str
    timezone: str = "UTC"


def dataset_window(dataset: Dataset, timezone: str = "UTC") -> Window:
    """From the start of the dataset's first day to a quarter hour after its end, in
    ``timezone``'s wall time: the window ends before the dataset was generated in every
    zone, so no export is clipped at the service's present (which the reference, given
    ``generated_at``, would place in an earlier quarter hour when the test crosses one)."""
    zone = ZoneInfo(timezone)
    start = dataset.start.astimezone(zone)
    end = (dataset.end + timedelta(minutes=15)).astimezone(zone)
    return Window(start.date().isoformat(), end.strftime("%Y-%m-%dT%H:%M:%S"), timezone)


def requests_for(
    orgs: Sequence[str], window: Window, types: Sequence[str] = EXPORT_TYPES
) -> list[dict[str, Any]]:
    return [
        export_request(org, data_type, window.from_date, window.to_date, timezone=window.timezone)
        for org in orgs
        for data_type in types
    ]


@dataclass
class ExportTally:
    exports: int = 0
    rows: int = 0
    lost: int = 0
    doubled: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    mismatches: list[str] = field(default_factory=list)
    files: dict[tuple[str, str, str | None], bytes] = field(default_factory=dict)

    def add(self, other: ExportTally) -> None:
        self.exports += other.exports
        self.rows += other.rows
        self.lost += other.lost
        self.doubled += other.doubled
        self.statuses.update(other.statuses)
        self.mismatches += other.mismatches

    def assert_exact(self) -> None:
        assert not self.mismatches, f"{len(self.mismatches)} mismatches: {self.mismatches[:5]}"
        assert (self.lost, self.doubled) == (0, 0), (self.lost, self.doubled)


async def download(url: str) -> bytes:
    def fetch() -> bytes:
        with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - test store URL
            body: bytes = response.read()
            return body

    return await asyncio.to_thread(fetch)


def expected_of(
    log: EventLog, message: dict[str, Any], now: datetime
) -> ReferenceResult | RequestRejected:
    try:
        return reference_request(log, message, now=now)
    except RequestRejected as rejected:
        return rejected


def parse_csv(body: bytes) -> tuple[list[str], list[list[str]]]:
    parsed = list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))
    return parsed[0], parsed[1:]


def _counts(data_type: str, header: list[str], rows: list[list[str]]) -> Counter[tuple[str, ...]]:
    column = COUNTED.get(data_type)
    counts: Counter[tuple[str, ...]] = Counter()
    if column is None or column not in header:
        return counts
    ids = [header.index(name) for name in ID_COLUMNS[data_type]]
    at = header.index(column)
    for row in rows:
        counts[tuple(row[i] for i in ids)] += int(row[at])
    return counts


def agrees(completion: ExportCompletion, expected: ReferenceResult | RequestRejected) -> bool:
    """Whether the answer's status and date range are the ones ``expected`` gives."""
    status = 200 if completion.success else completion.error.status if completion.error else 0
    if status != expected.status:
        return False
    if isinstance(expected, ReferenceResult) and completion.data is not None:
        return completion.data.dateRange == expected.date_range
    return True


async def compare(
    tally: ExportTally,
    message: dict[str, Any],
    completion: ExportCompletion,
    expected: ReferenceResult | RequestRejected,
    *,
    log: EventLog | None = None,
) -> bytes | None:
    """Record one completion against its expected outcome; returns the CSV if any.

    With ``log``, an answer that disagrees with ``expected`` only because the exporter
    read its clock after a quarter hour ended (a window ending today is clamped to that
    moment) is compared with the oracle at the present moment instead.
    """
    if log is not None and not agrees(completion, expected):
        later = expected_of(log, message, system_clock())
        if agrees(completion, later):
            expected = later
    tally.exports += 1
    status = 200 if completion.success else completion.error.status if completion.error else 0
    tally.statuses[status] += 1
    what = f"{message.get('org_id')}/{message.get('data_type')} {completion.request_id}"
    wanted = expected.status
    if status != wanted:
        error = completion.error.message if completion.error else ""
        reason = str(expected) if isinstance(expected, RequestRejected) else ""
        tally.mismatches.append(
            f"{what}: status {status} != {wanted} {error} {reason} request {message!r:.400}"
        )
        return None
    if not isinstance(expected, ReferenceResult) or completion.data is None:
        return None
    body = await download(completion.data.downloadUrl)
    tally.files[(message["org_id"], message["data_type"], message.get("group_by"))] = body
    header, rows = parse_csv(body)
    tally.rows += len(rows)
    kind = expected.data_type
    got, want = _counts(kind, header, rows), _counts(kind, expected.header, expected.rows)
    for key in got.keys() | want.keys():
        tally.lost += max(0, want[key] - got[key])
        tally.doubled += max(0, got[key] - want[key])
    if header != expected.header:
        extra, missing = set(header) - set(expected.header), set(expected.header) - set(header)
        tally.mismatches.append(f"{what}: header has {sorted(extra)}, lacks {sorted(missing)}")
    elif rows != expected.rows:
        differing = [(a, b) for a, b in zip(rows, expected.rows, strict=False) if a != b]
        cells = [
            f"{name}: {got!r} != {want!r}"
            for a, b in differing[:1]
            for name, got, want in zip(header, a, b, strict=False)
            if got != want
        ]
        tally.mismatches.append(
            f"{what}: {len(rows)} rows vs {len(expected.rows)} expected, "
            f"{len(differing)} differ (first: {', '.join(cells)})"
        )
    data = completion.data
    if (data.recordCount, data.bytes, data.sha256) != (
        len(rows),
        len(body),
        hashlib.sha256(body).hexdigest(),
    ):
        tally.mismatches.append(f"{what}: completion figures do not describe the file")
    if data.dateRange != expected.date_range:
        tally.mismatches.append(f"{what}: dateRange {data.dateRange} != {expected.date_range}")
    return body


async def verify_exports(
    client: ExportClient,
    log: EventLog,
    messages: Sequence[dict[str, Any]],
    *,
    tally: ExportTally | None = None,
    within_s: float = 300.0,
) -> ExportTally:
    """Request every message at once, then compare each answer with the oracle."""
    tally = tally if tally is not None else ExportTally()
    now = system_clock()
    expected = [expected_of(log, message, now) for message in messages]
    completions = await asyncio.gather(
        *(client.request(message, within_s=within_s) for message in messages)
    )
    for message, completion, wanted in zip(messages, completions, expected, strict=True):
        await compare(tally, message, completion, wanted, log=log)
    return tally


async def bucket_keys(settings: Settings, bucket: str, prefix: str = "") -> list[str]:
    async with S3ObjectStore(settings, bucket) as store:
        return sorted(item.key for item in await store.list_objects(prefix))


async def csv_keys(settings: Settings) -> list[str]:
    keys = await bucket_keys(settings, settings.exports_bucket)
    return [key for key in keys if key.endswith(".csv")]


@asynccontextmanager
async def exporter_in_process(settings: Settings) -> AsyncIterator[ExportClient]:
    """The exporter running in this process, and a client of it, until the block ends."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_exporter(settings, stop=stop), name="exporter-under-test")
    try:
        async with ExportClient(settings) as client:
            yield client
    finally:
        stop.set()
        await task
