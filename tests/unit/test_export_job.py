"""One request → one outcome, on an in-memory object store: idempotency, pinned windows,
404/409/503/500, and re-export of a deleted file. The store is real-shaped (ETags,
conditional writes); the aggregates are written by ingest's own storage code."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import orjson
import pytest

from services.exporter import export_job
from services.exporter.export_job import Exporter
from services.exporter.request_validation import ReadableRequest, read_request
from shared.adapters.s3 import ObjectStore, StoredObject
from shared.domain.dimensions import SETTINGS_ENTITY
from shared.domain.facts import MESSAGE, NANO, Fact
from shared.domain.window import day_start_ms
from shared.errors import StoreUnavailable
from shared.settings import Settings
from shared.storage.days import DayState, write_day
from shared.storage.dims import DimsState, write_dims
from tests.unit.memory_store import MemoryStore

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


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


async def add_day(store: MemoryStore, day: date, users: list[str]) -> None:
    state = DayState(org_id="ws-1", day=day)
    for index, user in enumerate(users):
        state.apply(message(user, day_start_ms(day) + 3_600_000 + index))
    await write_day(cast(ObjectStore, store), state)


async def seed(store: MemoryStore) -> None:
    """Two days of messages for ws-1, one user upsert, workspace settings."""
    await add_day(store, date(2026, 1, 5), ["u1", "u2"])
    await add_day(store, date(2026, 1, 6), ["u1"])
    users_dims = DimsState(org_id="ws-1", kind="users")
    users_dims.apply(
        ("u3", day_start_ms(date(2026, 1, 1)), "d1", {"name": "=Idle", "deleted": False})
    )
    await write_dims(cast(ObjectStore, store), users_dims)
    settings_dims = DimsState(org_id="ws-1", kind="settings")
    settings_dims.apply((SETTINGS_ENTITY, 0, "s1", {"byok": False, "user_level_data": True}))
    await write_dims(cast(ObjectStore, store), settings_dims)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def exporter(store: MemoryStore, clock: Clock | None = None, **settings: Any) -> Exporter:
    typed = cast(ObjectStore, store)
    return Exporter(Settings(**settings), aggregates=typed, exports=typed, clock=clock or Clock())


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


async def test_success_and_redelivery_give_the_same_file() -> None:
    store = MemoryStore()
    await seed(store)
    clock = Clock()
    first = await exporter(store, clock).answer(readable())
    assert first.success, first.error
    assert first.data is not None
    assert first.data.filePath == "users-usage/ws-1/users-usage-2026-01-01-2026-01-31-req-0000.csv"
    assert first.data.recordCount == 3  # u1, u2 with messages; u3 existing without
    body = store.objects[first.data.filePath][0]
    assert first.data.sha256 == hashlib.sha256(body).hexdigest()
    assert first.data.bytes == len(body)
    assert b"'=Idle" in body
    assert first.data.expiresAt == "2026-03-10T13:00:00.000Z"
    clock.now = NOW + timedelta(days=40)
    await add_day(store, date(2026, 1, 7), ["u9"])  # late data: the answer must not change
    again = await exporter(store, clock).answer(readable())
    assert again.data is not None
    assert (again.data.filePath, again.data.sha256, again.data.recordCount) == (
        first.data.filePath,
        first.data.sha256,
        first.data.recordCount,
    )
    assert again.data.downloadUrl != first.data.downloadUrl  # freshly signed
    assert store.csv_keys() == [first.data.filePath]


async def test_the_window_is_pinned_at_first_sight() -> None:
    store = MemoryStore()
    await seed(store)
    clock = Clock()
    request = readable(to={"date": "2026-12-31", "timezone": "UTC"})
    first = await exporter(store, clock).answer(request)
    assert first.data is not None
    assert first.data.dateRange["to"] == "2026-03-10T12:14:59.999Z"  # ceil15(now + 1 ms)
    clock.now = NOW + timedelta(days=400)  # 'from' would now be more than 12 months ago
    again = await exporter(store, clock).answer(request)
    assert again.success
    assert again.data is not None
    assert again.data.dateRange == first.data.dateRange


async def test_a_deleted_file_is_exported_again_to_the_same_key() -> None:
    store = MemoryStore()
    await seed(store)
    first = await exporter(store).answer(readable())
    assert first.data is not None
    del store.objects[first.data.filePath]
    again = await exporter(store).answer(readable())
    assert again.data is not None
    assert again.data.filePath == first.data.filePath
    assert store.csv_keys() == [first.data.filePath]


async def test_no_rows_is_404_and_recorded() -> None:
    store = MemoryStore()
    await seed(store)
    completion = await exporter(store).answer(
        readable(
            data_type="models",
            request_id="m-1",
            **{"from": {"date": "2026-02-01"}, "to": {"date": "2026-02-28"}},
        )
    )
    assert completion.error is not None
    assert (completion.error.status, completion.error.error) == (404, "No data found")
    assert store.csv_keys() == []
    record = orjson.loads(store.objects["requests/ws-1/m-1.json"][0])
    assert record["outcome"]["status"] == 404


async def test_bad_requests_are_400() -> None:
    store = MemoryStore()
    await seed(store)
    bad_zone = await exporter(store).answer(
        readable(to={"date": "2026-01-31", "timezone": "Nowhere/City"})
    )
    assert bad_zone.error is not None
    assert bad_zone.error.status == 400
    assert "Nowhere/City" in bad_zone.error.message
    not_byok = await exporter(store).answer(
        readable(request_id="r-2", data_type="models", group_by="deployment")
    )
    assert not_byok.error is not None
    assert "BYOK" in not_byok.error.message
    bad_org = await exporter(store).answer(readable(request_id="r-3", org_id="no spaces"))
    assert bad_org.error is not None
    assert bad_org.org_id is None
    assert bad_org.error.status == 400


async def test_request_ids_sharing_eight_characters_do_not_overwrite_files() -> None:
    store = MemoryStore()
    await seed(store)
    first = await exporter(store).answer(readable(request_id="export-2026-a"))
    second = await exporter(store).answer(readable(request_id="export-2026-b"))
    assert first.success
    assert second.error is not None
    assert second.error.status == 409
    assert "export-2026-a" in second.error.message
    assert len(store.csv_keys()) == 1


async def test_store_unavailable_past_the_deadline_is_503(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export_job, "_RETRY_BASE_S", 0.01)
    store = MemoryStore()
    store.fail = StoreUnavailable
    completion = await exporter(store, export_deadline_s=0.3).answer(readable())
    assert completion.error is not None
    assert completion.error.status == 503
    assert "object store stayed unavailable" in completion.error.message
    store.fail = None  # the store is back: the same request id now succeeds
    await seed(store)
    assert (await exporter(store).answer(readable())).success


class HangingStore(MemoryStore):
    """A store that accepts connections and never answers (a partition, a hung gateway):
    no call fails before the client's own timeouts, which outlast the deadline."""

    async def get(self, key: str) -> StoredObject | None:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_store_that_never_answers_is_503_at_the_deadline() -> None:
    completion = await exporter(HangingStore(), export_deadline_s=0.3).answer(readable())
    assert completion.error is not None
    assert completion.error.status == 503
    assert "object store" in completion.error.message


async def test_unexpected_errors_are_500_after_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export_job, "_RETRY_BASE_S", 0.01)
    store = MemoryStore()
    store.fail = ZeroDivisionError
    completion = await exporter(store).answer(readable())
    assert completion.error is not None
    assert completion.error.status == 500
    assert "ZeroDivisionError" in completion.error.message
