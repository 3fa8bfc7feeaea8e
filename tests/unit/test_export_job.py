"""One request → one outcome: idempotency, pinned windows, 404/409/503/500, and re-export
of a deleted file. The workspace's tables are real Delta tables in a local directory
(written by ``WorkspaceTables.append``, as ingest writes them); the exports bucket is an
in-memory store with real-shaped ETags and conditional writes."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import ipaddress
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow.dataset as ds
import pytest

from services.exporter import export_job
from services.exporter.export_job import Exporter
from shared.adapters.callback_vetting import CallbackVetter
from shared.adapters.object_store import StoredObject
from shared.columnar.queries.engine import connect
from shared.columnar.schema import DIMENSIONS, DimensionVersion, dimensions_table, facts_table
from shared.columnar.tables import FACTS_TABLE, LatestTables, TableStore, WorkspaceTables
from shared.domain.dimensions import SETTINGS_ENTITY
from shared.domain.export.request_validation import ReadableRequest, read_request
from shared.domain.facts import MESSAGE, NANO, Fact
from shared.domain.webhooks.addresses import IPAddress
from shared.domain.window import day_start_ms
from shared.errors import StoreUnavailable
from shared.settings import Settings
from tests.unit.memory_store import MemoryStore

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
HOUR_MS = 3_600_000


def message(user: str, at_ms: int, model: str = "gpt-4.1") -> Fact:
    return (
        MESSAGE,
        f"{user}-{at_ms}",
        at_ms,
        user,
        None,
        None,
        None,
        model,
        "openai",
        False,
        "",
        "WEB",
        [],
        1,
        10,
        5,
        0,
        0,
        NANO,
    )


@dataclass
class Workspace:
    """ws-1's tables in a local directory; each append records the next Kafka position."""

    tables: TableStore
    offset: int = 0

    async def append(
        self, facts: list[Fact], versions: list[DimensionVersion] | None = None
    ) -> None:
        versions = versions or []
        self.offset += len(facts) + len(versions)
        writer = await WorkspaceTables.open(self.tables, "ws-1")
        await writer.append(
            facts_table("ws-1", facts),
            dimensions_table("ws-1", versions),
            {("usage.events", 0): self.offset},
        )

    async def add_day(self, day: date, users: list[str]) -> None:
        start = day_start_ms(day) + HOUR_MS
        await self.append([message(user, start + index) for index, user in enumerate(users)])


async def seed(tables: TableStore) -> Workspace:
    """Two days of messages for ws-1, one user upsert, workspace settings."""
    workspace = Workspace(tables)
    await workspace.append(
        [],
        [
            (
                "users",
                "u3",
                day_start_ms(date(2026, 1, 1)),
                "d1",
                {"name": "=Idle", "deleted": False},
            ),
            ("settings", SETTINGS_ENTITY, 0, "s1", {"byok": False, "user_level_data": True}),
        ],
    )
    await workspace.add_day(date(2026, 1, 5), ["u1", "u2"])
    await workspace.add_day(date(2026, 1, 6), ["u1"])
    return workspace


@pytest.fixture
def tables(tmp_path: Path) -> TableStore:
    return TableStore.local(str(tmp_path / "aggregates"))


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def exporter(
    tables: TableStore, store: MemoryStore, clock: Clock | None = None, **settings: Any
) -> Exporter:
    return Exporter(
        Settings(**settings),
        tables=tables,
        exports=store,
        clock=clock or Clock(),
    )


def readable(**changes: Any) -> ReadableRequest:
    payload = {
        "request_id": "req-00000001",
        "org_id": "ws-1",
        "data_type": "users",
        "from": {"date": "2026-01-01", "timezone": "UTC"},
        "to": {"date": "2026-01-31", "timezone": "UTC"},
    } | changes
    result = read_request(orjson.dumps(payload), max_bytes=65536)
    assert isinstance(result, ReadableRequest)
    return result


def csv_header(body: bytes) -> list[str]:
    return next(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))


def csv_rows(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8"), newline="")))


async def test_success_and_redelivery_give_the_same_file(tables: TableStore) -> None:
    store = MemoryStore()
    workspace = await seed(tables)
    clock = Clock()
    first = await exporter(tables, store, clock).answer(readable())
    assert first.success, first.error
    assert first.data is not None
    assert first.data.filePath == "users-usage/ws-1/users-usage-2026-01-01-2026-01-31-req-0000.csv"
    assert first.data.recordCount == 3  # u1, u2 with messages; u3 existing without
    body = store.objects[first.data.filePath][0]
    assert first.data.sha256 == hashlib.sha256(body).hexdigest()
    assert first.data.bytes == len(body)
    rows = csv_rows(body)
    assert [(row["user_id"], row["messages_total"], row["name"]) for row in rows] == [
        ("u1", "2", ""),
        ("u2", "1", ""),
        ("u3", "0", "'=Idle"),
    ]
    assert first.data.expiresAt == "2026-03-10T13:00:00.000Z"
    assert first.data.ingestedThrough is None  # no broker to ask: unknown, said so
    manifest = orjson.loads(
        store.objects[first.data.filePath.removesuffix(".csv") + ".manifest.json"][0]
    )
    assert manifest["sha256"] == first.data.sha256
    assert manifest["recordCount"] == 3
    assert manifest["columns"] == csv_header(body)
    assert manifest["request"]["format"] == manifest["format"] == "csv"
    assert manifest["window"]["dateRange"] == first.data.dateRange
    assert (manifest["request"]["bucket"], manifest["window"]["buckets"]) == (None, 0)
    assert manifest["ingestedThrough"] is None
    assert manifest["schemaVersion"] == 1
    clock.now = NOW + timedelta(days=40)
    await workspace.add_day(date(2026, 1, 7), ["u9"])  # late data: the answer must not change
    again = await exporter(tables, store, clock).answer(readable())
    assert again.data is not None
    assert (again.data.filePath, again.data.sha256, again.data.recordCount) == (
        first.data.filePath,
        first.data.sha256,
        first.data.recordCount,
    )
    assert again.data.downloadUrl != first.data.downloadUrl  # freshly signed
    assert store.csv_keys() == [first.data.filePath]
    # A new request sees the late day.
    late = await exporter(tables, store, clock).answer(readable(request_id="req-late"))
    assert late.data is not None
    assert late.data.recordCount == 4


async def test_the_window_reads_the_utc_days_it_touches(tables: TableStore) -> None:
    """A window in another zone starts and ends on other UTC days than its local dates;
    events just inside either bound count, events just outside do not."""
    store = MemoryStore()
    workspace = Workspace(tables)
    # 2026-01-05 in Tokyo (UTC+9) is [2026-01-04T15:00Z, 2026-01-05T15:00Z).
    start = day_start_ms(date(2026, 1, 4)) + 15 * HOUR_MS
    end = start + 24 * HOUR_MS
    await workspace.append(
        [
            message("before", start - 1),
            message("first", start),
            message("last", end - 1),
            message("after", end),
        ]
    )
    zone = {"timezone": "Asia/Tokyo"}
    completion = await exporter(tables, store).answer(
        readable(**{"from": {"date": "2026-01-05"} | zone, "to": {"date": "2026-01-05"} | zone})
    )
    assert completion.data is not None, completion.error
    body = store.objects[completion.data.filePath][0]
    assert sorted(row["user_id"] for row in csv_rows(body)) == ["first", "last"]


async def test_the_window_is_pinned_at_first_sight(tables: TableStore) -> None:
    store = MemoryStore()
    await seed(tables)
    clock = Clock()
    request = readable(to={"date": "2026-12-31", "timezone": "UTC"})
    first = await exporter(tables, store, clock).answer(request)
    assert first.data is not None
    assert first.data.dateRange["to"] == "2026-03-10T12:14:59.999Z"  # ceil15(now + 1 ms)
    clock.now = NOW + timedelta(days=400)  # 'from' would now be more than 12 months ago
    again = await exporter(tables, store, clock).answer(request)
    assert again.success
    assert again.data is not None
    assert again.data.dateRange == first.data.dateRange


async def test_a_deleted_file_is_exported_again_to_the_same_key(tables: TableStore) -> None:
    store = MemoryStore()
    await seed(tables)
    first = await exporter(tables, store).answer(readable())
    assert first.data is not None
    body = store.objects[first.data.filePath][0]
    del store.objects[first.data.filePath]
    again = await exporter(tables, store).answer(readable())
    assert again.data is not None
    assert again.data.filePath == first.data.filePath
    assert store.csv_keys() == [first.data.filePath]
    assert store.objects[first.data.filePath][0] == body


async def test_a_deleted_manifest_is_written_again(tables: TableStore) -> None:
    store = MemoryStore()
    await seed(tables)
    first = await exporter(tables, store).answer(readable())
    assert first.data is not None
    manifest = first.data.filePath.removesuffix(".csv") + ".manifest.json"
    written = store.objects.pop(manifest)[0]
    again = await exporter(tables, store).answer(readable())
    assert again.data is not None
    assert again.data.filePath == first.data.filePath
    assert store.objects[manifest][0] == written


async def test_no_rows_is_404_and_recorded(tables: TableStore) -> None:
    store = MemoryStore()
    await seed(tables)
    completion = await exporter(tables, store).answer(
        readable(
            data_type="models",
            request_id="m-1",
            **{"from": {"date": "2026-02-01"}, "to": {"date": "2026-02-28"}},
        )
    )
    assert completion.error is not None
    assert (completion.error.status, completion.error.error) == (404, "No data found")
    assert completion.error.message == (
        "No data found: workspace ws-1 has no models rows between "
        "2026-02-01T00:00:00.000Z and 2026-02-28T23:59:59.999Z"
    )
    assert store.csv_keys() == []
    record = orjson.loads(store.objects["requests/ws-1/m-1.json"][0])
    assert record["outcome"]["status"] == 404


async def test_a_workspace_without_tables_has_no_rows(tables: TableStore) -> None:
    store = MemoryStore()
    completion = await exporter(tables, store).answer(readable(org_id="ws-none"))
    assert completion.error is not None
    assert completion.error.status == 404
    assert store.csv_keys() == []


async def test_bad_requests_are_400(tables: TableStore) -> None:
    store = MemoryStore()
    await seed(tables)
    bad_zone = await exporter(tables, store).answer(
        readable(to={"date": "2026-01-31", "timezone": "Nowhere/City"})
    )
    assert bad_zone.error is not None
    assert bad_zone.error.status == 400
    assert "Nowhere/City" in bad_zone.error.message
    not_byok = await exporter(tables, store).answer(
        readable(request_id="r-2", data_type="models", group_by="deployment")
    )
    assert not_byok.error is not None
    assert not_byok.error.status == 400
    assert "BYOK" in not_byok.error.message
    bad_org = await exporter(tables, store).answer(readable(request_id="r-3", org_id="no spaces"))
    assert bad_org.error is not None
    assert bad_org.org_id is None
    assert bad_org.error.status == 400


async def test_a_byok_workspace_may_group_by_deployment(tables: TableStore) -> None:
    store = MemoryStore()
    workspace = await seed(tables)
    settings = ("settings", SETTINGS_ENTITY, 1, "s2", {"byok": True, "user_level_data": True})
    await workspace.append([], [settings])
    completion = await exporter(tables, store).answer(
        readable(request_id="r-2", data_type="models", group_by="deployment")
    )
    assert completion.data is not None, completion.error
    header = store.objects[completion.data.filePath][0].split(b"\r\n")[0]
    assert b"deployment" in header.split(b",")


async def test_request_ids_sharing_eight_characters_do_not_overwrite_files(
    tables: TableStore,
) -> None:
    store = MemoryStore()
    await seed(tables)
    first = await exporter(tables, store).answer(readable(request_id="export-2026-a"))
    second = await exporter(tables, store).answer(readable(request_id="export-2026-b"))
    assert first.success
    assert second.error is not None
    assert second.error.status == 409
    assert "export-2026-a" in second.error.message
    assert len(store.csv_keys()) == 1


async def test_store_unavailable_past_the_deadline_is_503(
    tables: TableStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export_job, "_RETRY_BASE_S", 0.01)
    store = MemoryStore()
    store.fail = StoreUnavailable
    completion = await exporter(tables, store, export_deadline_s=0.3).answer(readable())
    assert completion.error is not None
    assert completion.error.status == 503
    assert "object store stayed unavailable" in completion.error.message
    store.fail = None  # the store is back: the same request id now succeeds
    await seed(tables)
    assert (await exporter(tables, store).answer(readable())).success


async def test_unreadable_tables_past_the_deadline_are_503(
    tables: TableStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """delta-rs raises OSError once its own retries are spent: the store is unavailable."""
    monkeypatch.setattr(export_job, "_RETRY_BASE_S", 0.01)
    await seed(tables)
    reads = 0

    async def unreachable(*args: object, **kwargs: object) -> object:
        nonlocal reads
        reads += 1
        raise OSError("Generic S3 error: error sending request")

    def unreachable_files(*args: object, **kwargs: object) -> object:
        nonlocal reads
        reads += 1
        raise OSError("Generic S3 error: error sending request")

    monkeypatch.setattr(LatestTables, "facts_scan", unreachable)  # the other types' facts
    monkeypatch.setattr(export_job, "rolled_up_read", unreachable_files)  # facts + roll-ups
    store = MemoryStore()
    completion = await exporter(tables, store, export_deadline_s=0.3).answer(readable())
    assert completion.error is not None
    assert completion.error.status == 503
    assert "object store stayed unavailable" in completion.error.message
    assert reads > export_job.UNEXPECTED_ATTEMPTS  # retried as transient, not given up
    assert store.csv_keys() == []


async def test_files_that_fail_while_the_query_scans_them_are_the_store_s_failure(
    tables: TableStore, tmp_path: Path
) -> None:
    """The query reads the facts files as it goes: a file that cannot be read then (the
    store went away after the plan) is the store's failure, retried until the deadline
    and answered 503, not an internal error."""
    await seed(tables)
    latest = LatestTables(tables)
    scan = await latest.facts_scan("ws-1", date(2026, 1, 1), date(2026, 1, 31), ["kind"])
    assert isinstance(scan, ds.FileSystemDataset)
    for path in scan.files:  # gone between the plan and the scan
        (Path(tables.uri("ws-1", FACTS_TABLE)) / path).unlink()
    with pytest.raises(StoreUnavailable):
        await export_job._reading(
            asyncio.to_thread(export_job._scanning, lambda: scan.to_table().num_rows)
        )
    con = connect(scan, DIMENSIONS.empty_table())
    try:
        with pytest.raises(StoreUnavailable, match="reading the workspace's tables failed"):
            await export_job._reading(
                asyncio.to_thread(
                    export_job._scanning, lambda: con.sql("SELECT count(*) FROM facts").fetchall()
                )
            )
    finally:
        con.close()


class HangingStore(MemoryStore):
    """A store that accepts connections and never answers (a partition, a hung gateway):
    no call fails before the client's own timeouts, which outlast the deadline."""

    async def get(self, key: str) -> StoredObject | None:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_store_that_never_answers_is_503_at_the_deadline(tables: TableStore) -> None:
    completion = await exporter(tables, HangingStore(), export_deadline_s=0.3).answer(readable())
    assert completion.error is not None
    assert completion.error.status == 503
    assert "object store" in completion.error.message


async def test_unexpected_errors_are_500_after_retries(
    tables: TableStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export_job, "_RETRY_BASE_S", 0.01)
    store = MemoryStore()
    store.fail = ZeroDivisionError
    completion = await exporter(tables, store).answer(readable())
    assert completion.error is not None
    assert completion.error.status == 500
    assert "ZeroDivisionError" in completion.error.message


class FixedProgress:
    """An ingest progress source that answers one instant, or fails."""

    def __init__(self, through: datetime | None) -> None:
        self.through_at = through
        self.asked = 0

    async def through(self) -> datetime:
        self.asked += 1
        if self.through_at is None:
            raise TimeoutError("no fetch response for partitions [0]")
        return self.through_at


async def test_ingested_through_is_taken_before_the_read_and_recorded(tables: TableStore) -> None:
    await seed(tables)
    store = MemoryStore()
    progress = FixedProgress(datetime(2026, 2, 28, 9, 15, 30, 123000, tzinfo=UTC))
    job = Exporter(Settings(), tables=tables, exports=store, clock=Clock(), progress=progress)
    completion = await job.answer(readable())
    assert completion.data is not None
    assert completion.data.ingestedThrough == "2026-02-28T09:15:30.123Z"
    manifest_key = completion.data.filePath.removesuffix(".csv") + ".manifest.json"
    assert orjson.loads(store.objects[manifest_key][0])["ingestedThrough"] == (
        "2026-02-28T09:15:30.123Z"
    )
    progress.through_at = None  # a redelivery is answered from the record, unchanged
    again = await job.answer(readable())
    assert again.data is not None
    assert again.data.ingestedThrough == "2026-02-28T09:15:30.123Z"
    assert progress.asked == 1
    failing = await job.answer(readable(request_id="other-0001"))  # the broker cannot tell
    assert failing.success
    assert failing.data is not None
    assert failing.data.ingestedThrough is None


async def test_a_callback_is_vetted_then_recorded_and_a_refused_one_is_400(
    tables: TableStore,
) -> None:
    store = MemoryStore()
    await seed(tables)
    addresses = {"hooks.example.com": "93.184.216.34", "sneaky.example.com": "10.0.0.9"}

    async def resolve(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address(addresses[host])]

    job = Exporter(
        Settings(),
        tables=tables,
        exports=store,
        clock=Clock(),
        vetter=CallbackVetter.of(Settings(), resolve=resolve),
    )
    good = await job.answer(readable(request_id="cb-1", callback_url="https://hooks.example.com/x"))
    assert good.success, good.error
    record = orjson.loads(store.objects["requests/ws-1/cb-1.json"][0])
    assert record["callback_url"] == "https://hooks.example.com/x"
    assert record["outcome"]["status"] == 200  # settling kept the URL
    for request_id, url, why in (
        ("cb-2", "https://sneaky.example.com/x", "10.0.0.9 is a private address"),
        ("cb-3", "http://hooks.example.com/x", "must use https"),
        ("cb-4", "https://169.254.169.254/latest", "metadata"),
    ):
        refused = await job.answer(readable(request_id=request_id, callback_url=url))
        assert refused.error is not None
        assert refused.error.status == 400
        assert why in refused.error.message
        stored = orjson.loads(store.objects[f"requests/ws-1/{request_id}.json"][0])
        assert stored["callback_url"] is None
    bad_type = await job.answer(readable(request_id="cb-5", callback_url=7))
    assert bad_type.error is not None
    assert "callback_url must be" in bad_type.error.message


async def test_a_request_refused_for_another_reason_keeps_its_callback(
    tables: TableStore,
) -> None:
    # Contract §4a: a request with a callback_url is POSTed its completion whatever the
    # status, 400 included; the callback was only recorded for requests that validated.
    store = MemoryStore()
    await seed(tables)

    async def resolve(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("93.184.216.34")]

    job = Exporter(
        Settings(),
        tables=tables,
        exports=store,
        clock=Clock(),
        vetter=CallbackVetter.of(Settings(), resolve=resolve),
    )
    url = "https://hooks.example.com/x"
    bad = await job.answer(readable(request_id="cb-9", data_type="nope", callback_url=url))
    assert bad.error is not None
    assert bad.error.status == 400
    assert "data_type" in bad.error.message
    record = orjson.loads(store.objects["requests/ws-1/cb-9.json"][0])
    assert record["callback_url"] == url
    private = await job.answer(
        readable(request_id="cb-10", data_type="nope", callback_url="https://10.0.0.1/")
    )
    assert private.error is not None
    assert "data_type" in private.error.message  # the first reason is kept
    stored = orjson.loads(store.objects["requests/ws-1/cb-10.json"][0])
    assert stored["callback_url"] is None
