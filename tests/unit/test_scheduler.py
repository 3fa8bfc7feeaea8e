"""The scheduler (services/scheduler) against an in-memory store and publisher: due periods
published oldest first with derived ids, progress recorded, a crash between publish and
record re-publishes the same id only, replicas agree, pause/resume, and the CLI."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import orjson
import pytest
from prometheus_client import CollectorRegistry

from services.cli import build_parser, schedules
from services.scheduler.store import ScheduleError, ScheduleStore
from services.scheduler.worker import Scheduler
from shared.domain.schedules import Schedule
from shared.errors import StoreRefused
from shared.observability import SchedulerMetrics
from tests.unit.memory_store import MemoryStore

T = TypeVar("T")
CREATED = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)


class MovableClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Publisher:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def publish(self, message: dict[str, Any]) -> None:
        self.sent.append(message)


def _scheduler(
    store: MemoryStore,
    clock: MovableClock,
    publisher: Publisher,
    metrics: SchedulerMetrics | None = None,
) -> Scheduler:
    return Scheduler(
        ScheduleStore(store, clock=clock),
        publisher,
        interval_s=1,
        grace_s=7200,
        clock=clock,
        metrics=metrics,
    )


async def _created(store: MemoryStore, clock: MovableClock, **fields: Any) -> Schedule:
    schedules_ = ScheduleStore(store, clock=clock)
    return await schedules_.create(
        schedules_.new("ws-1", "users", fields.pop("every", "day"), "Europe/Berlin", **fields)
    )


async def test_due_periods_are_published_oldest_first_and_recorded() -> None:
    store, clock, publisher = MemoryStore(), MovableClock(CREATED), Publisher()
    schedule = await _created(store, clock)
    registry = CollectorRegistry()
    scheduler = _scheduler(store, clock, publisher, SchedulerMetrics(registry))
    await scheduler.run_round()
    assert publisher.sent == []  # the first period (March 11) has not even started
    clock.now = datetime(2026, 3, 14, 0, 30, tzinfo=UTC)  # 01:30 Berlin: 11..12 due, 13 in grace
    await scheduler.run_round()
    assert [m["from"]["date"] for m in publisher.sent] == ["2026-03-11", "2026-03-12"]
    stored = await ScheduleStore(store).get("ws-1", schedule.schedule_id)
    assert stored is not None
    assert stored.published_through == date(2026, 3, 12)
    await scheduler.run_round()  # nothing new is due
    assert len(publisher.sent) == 2
    assert registry.get_sample_value("usage_scheduler_requests_published_total") == 2
    assert registry.get_sample_value("usage_scheduler_rounds_total") == 3
    assert registry.get_sample_value("usage_scheduler_failures_total") == 0


async def test_a_crash_before_the_record_republishes_the_same_ids_only() -> None:
    store, clock, publisher = MemoryStore(), MovableClock(CREATED), Publisher()
    await _created(store, clock)
    clock.now = CREATED + timedelta(days=5)
    real_put = store.put
    writes = 0

    async def crash_on_second_record(key: str, body: bytes, **kwargs: Any) -> str:
        nonlocal writes
        if kwargs.get("if_match") is not None:
            writes += 1
            if writes == 2:
                raise RuntimeError("killed")
        return await real_put(key, body, **kwargs)

    store.put = crash_on_second_record  # type: ignore[method-assign]
    await _scheduler(store, clock, publisher).run_round()  # dies after publishing March 12
    store.put = real_put  # type: ignore[method-assign]
    first_ids = [m["request_id"] for m in publisher.sent]
    assert len(first_ids) == 2
    await _scheduler(store, clock, publisher).run_round()  # a restarted process
    ids = [m["request_id"] for m in publisher.sent]
    days = [m["from"]["date"] for m in publisher.sent]
    assert days == ["2026-03-11", "2026-03-12", "2026-03-12", "2026-03-13", "2026-03-14"]
    assert ids[2] == ids[1]  # the republished period is the same request
    assert len(set(ids)) == 4


async def test_two_replicas_publish_each_period_under_one_id() -> None:
    store, clock = MemoryStore(), MovableClock(CREATED)
    await _created(store, clock, every="week")
    clock.now = CREATED + timedelta(days=40)
    one, two = Publisher(), Publisher()
    await asyncio.gather(
        _scheduler(store, clock, one).run_round(), _scheduler(store, clock, two).run_round()
    )
    by_day: dict[str, set[str]] = {}
    for message in one.sent + two.sent:
        by_day.setdefault(message["from"]["date"], set()).add(message["request_id"])
    assert sorted(by_day) == ["2026-03-16", "2026-03-23", "2026-03-30", "2026-04-06"]
    assert all(len(ids) == 1 for ids in by_day.values())


async def test_paused_publishes_nothing_and_resume_skips_what_ended_while_paused() -> None:
    store, clock, publisher = MemoryStore(), MovableClock(CREATED), Publisher()
    schedule = await _created(store, clock)
    schedules_ = ScheduleStore(store, clock=clock)
    clock.now = datetime(2026, 3, 12, 12, 0, tzinfo=UTC)
    await schedules_.pause("ws-1", schedule.schedule_id)
    clock.now = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
    scheduler = _scheduler(store, clock, publisher)
    await scheduler.run_round()
    assert publisher.sent == []
    await schedules_.resume("ws-1", schedule.schedule_id)
    clock.now = datetime(2026, 3, 22, 12, 0, tzinfo=UTC)
    await scheduler.run_round()
    # March 11 ended before the pause; 12..19 ended while paused; 20 and 21 after.
    assert [m["from"]["date"] for m in publisher.sent] == [
        "2026-03-11",
        "2026-03-20",
        "2026-03-21",
    ]
    stored = await schedules_.get("ws-1", schedule.schedule_id)
    assert stored is not None
    assert stored.published_through == date(2026, 3, 21)


async def test_invalid_schedules_and_unknown_ids_are_refused() -> None:
    store, clock = MemoryStore(), MovableClock(CREATED)
    schedules_ = ScheduleStore(store, clock=clock)
    with pytest.raises(ScheduleError, match="group_by"):
        schedules_.new("ws-1", "projects", "day", "UTC", group_by="model")
    with pytest.raises(ScheduleError, match="every"):
        schedules_.new("ws-1", "users", "hour", "UTC")
    with pytest.raises(ScheduleError, match="IANA"):
        schedules_.new("ws-1", "users", "day", "/etc/localtime")
    with pytest.raises(ScheduleError, match="no schedule"):
        await schedules_.pause("ws-1", "nope")
    with pytest.raises(ScheduleError, match="not a valid id"):
        await schedules_.delete("ws-1", "../x")


def test_the_cli_creates_lists_pauses_resumes_and_deletes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store, clock = MemoryStore(), MovableClock(CREATED)

    def with_schedules(call: Callable[[ScheduleStore], Awaitable[T]]) -> T:
        return asyncio.run(call(ScheduleStore(store, clock=clock)))  # type: ignore[arg-type]

    monkeypatch.setattr(schedules, "_with_schedules", with_schedules)

    def run(*argv: str) -> tuple[int, str]:
        args = build_parser().parse_args(["schedules", *argv])
        status: int = args.func(args)
        captured = capsys.readouterr()
        return status, captured.out + captured.err

    status, out = run(
        "create", "--org", "ws-1", "--type", "models", "--every", "month",
        "--timezone", "Asia/Kolkata", "--group-by", "source", "--format", "parquet",
        "--destination", "archive",
    )  # fmt: skip
    assert status == 0, out
    schedule_id = out.strip().splitlines()[-1]
    (stored,) = asyncio.run(ScheduleStore(store).list_for("ws-1"))
    assert (stored.schedule_id, stored.data_type, stored.every.value) == (
        schedule_id,
        "models",
        "month",
    )
    assert (stored.group_by, stored.format, stored.destination) == ("source", "parquet", "archive")
    status, out = run("list", "--org", "ws-1")
    assert status == 0
    assert schedule_id in out
    assert "active" in out
    assert run("pause", "--org", "ws-1", schedule_id)[0] == 0
    assert "paused" in run("list", "--org", "ws-1")[1]
    assert run("resume", "--org", "ws-1", schedule_id)[0] == 0
    assert "active" in run("list", "--org", "ws-1")[1]
    assert run("delete", "--org", "ws-1", schedule_id)[0] == 0
    assert "no schedules" in run("list", "--org", "ws-1")[1]
    status, out = run(
        "create", "--org", "ws-1", "--type", "projects", "--every", "day", "--timezone", "UTC",
        "--group-by", "model",
    )  # fmt: skip
    assert status == 1
    assert "group_by" in out
    assert run("delete", "--org", "ws-1", schedule_id)[0] == 1


async def test_a_malformed_schedule_record_is_ignored_and_the_others_are_published() -> None:
    store, clock, publisher = MemoryStore(), MovableClock(CREATED), Publisher()
    good = await _created(store, clock)
    base = good.to_json()
    bad_records: list[Any] = [
        [],
        "text",
        base | {"schedule_id": "a1", "group_by": 5},
        base | {"schedule_id": "a2", "timezone": "Mars/Olympus"},
        base | {"schedule_id": "a3", "org_id": ["ws-1"]},
    ]
    for index, record in enumerate(bad_records):
        schedule_id = record["schedule_id"] if isinstance(record, dict) else f"bad{index}"
        await store.put(f"schedules/ws-1/{schedule_id}.json", orjson.dumps(record))
    listed = await ScheduleStore(store).list_for(None)
    assert [s.schedule_id for s in listed] == [good.schedule_id]
    clock.now = CREATED + timedelta(days=3)
    scheduler = _scheduler(store, clock, publisher)
    await scheduler.run_round()
    assert [m["from"]["date"] for m in publisher.sent] == ["2026-03-11", "2026-03-12"]
    assert scheduler.stats.failures == 0


async def test_a_listing_that_fails_unexpectedly_ends_the_round_not_the_scheduler() -> None:
    store, clock, publisher = MemoryStore(), MovableClock(CREATED), Publisher()
    await _created(store, clock)
    real_list = store.list_objects

    async def broken(prefix: str, *, start_after: str | None = None) -> Any:
        raise RuntimeError("the store client broke")

    store.list_objects = broken  # type: ignore[method-assign]
    scheduler = _scheduler(store, clock, publisher)
    clock.now = CREATED + timedelta(days=3)
    await scheduler.run_round()
    assert scheduler.stats.failures == 1
    store.list_objects = real_list  # type: ignore[method-assign]
    await scheduler.run_round()
    assert len(publisher.sent) == 2


async def test_a_round_reads_only_the_schedules_that_changed_since_the_last_listing() -> None:
    store, clock, publisher = MemoryStore(), MovableClock(CREATED), Publisher()
    kept = [await _created(store, clock) for _ in range(5)]
    await store.put("schedules/ws-1/broken.json", b"[]")
    real_get = store.get
    reads: list[str] = []

    async def counting_get(key: str) -> Any:
        reads.append(key)
        return await real_get(key)

    store.get = counting_get  # type: ignore[method-assign]
    scheduler = _scheduler(store, clock, publisher)
    await scheduler.run_round()
    assert len(reads) == 6  # nothing due yet: each record read once
    reads.clear()
    await scheduler.run_round()
    assert reads == []  # nothing changed: no record read, the broken one neither
    schedules_ = ScheduleStore(store, clock=clock)
    await schedules_.pause("ws-1", kept[0].schedule_id)
    await schedules_.delete("ws-1", kept[1].schedule_id)
    reads.clear()
    await scheduler.run_round()
    assert reads == [f"schedules/ws-1/{kept[0].schedule_id}.json"]
    clock.now = CREATED + timedelta(days=2)
    await scheduler.run_round()
    published = {m["requested_by"] for m in publisher.sent}
    assert published == {f"schedule:{s.schedule_id}" for s in kept[2:]}


async def test_a_broker_failure_ends_the_round_instead_of_waiting_on_every_schedule() -> None:
    store, clock = MemoryStore(), MovableClock(CREATED)
    for _ in range(3):
        await _created(store, clock)
    attempts: list[str] = []

    class Down:
        async def publish(self, message: dict[str, Any]) -> None:
            attempts.append(message["request_id"])
            raise TimeoutError("the broker did not answer")

    clock.now = CREATED + timedelta(days=3)
    scheduler = Scheduler(
        ScheduleStore(store, clock=clock), Down(), interval_s=1, grace_s=7200, clock=clock
    )
    await scheduler.run_round()
    assert len(attempts) == 1
    assert scheduler.stats.failures == 1
    assert all(s.published_through is None for s in await ScheduleStore(store).list_for(None))
    publisher = Publisher()
    scheduler._publisher = publisher  # the broker is back
    await scheduler.run_round()
    assert len(publisher.sent) == 6


@pytest.mark.parametrize("action", ["delete", "pause"])
async def test_a_schedule_deleted_or_paused_during_a_round_stops_there(action: str) -> None:
    store, clock = MemoryStore(), MovableClock(CREATED)
    schedule = await _created(store, clock)
    schedules_ = ScheduleStore(store, clock=clock)
    sent: list[str] = []

    class Acting:
        async def publish(self, message: dict[str, Any]) -> None:
            sent.append(message["from"]["date"])
            if len(sent) == 1:  # the user acts while the first period is being published
                await getattr(schedules_, action)("ws-1", schedule.schedule_id)

    clock.now = CREATED + timedelta(days=5)
    scheduler = Scheduler(schedules_, Acting(), interval_s=1, grace_s=7200, clock=clock)
    await scheduler.run_round()
    assert sent == ["2026-03-11"]
    assert scheduler.stats.failures == 0
    stored = await schedules_.get("ws-1", schedule.schedule_id)
    if action == "delete":
        assert stored is None  # the progress write did not bring it back
        assert store.body(f"schedules/ws-1/{schedule.schedule_id}.json") is None
    else:
        assert stored is not None
        assert (stored.state, stored.published_through) == ("paused", date(2026, 3, 11))
    await scheduler.run_round()
    assert sent == ["2026-03-11"]


async def test_a_change_racing_a_delete_on_aws_is_an_unknown_schedule() -> None:
    """AWS answers a conditional PUT on a key deleted meanwhile with 404 NoSuchKey (a
    refusal), not 412: the change is still "no such schedule", not a store failure."""
    store, clock = MemoryStore(), MovableClock(CREATED)
    schedule = await _created(store, clock)
    schedules_ = ScheduleStore(store, clock=clock)
    real_put = store.put

    async def delete_first(key: str, body: bytes, **kwargs: Any) -> str:
        await store.delete(key)  # the DELETE lands between the read and the write
        raise StoreRefused("PUT: NoSuchKey")

    store.put = delete_first  # type: ignore[method-assign]
    with pytest.raises(ScheduleError, match="no schedule"):
        await schedules_.pause("ws-1", schedule.schedule_id)
    store.put = real_put  # type: ignore[method-assign]
    other = await _created(store, clock)

    async def refused(key: str, body: bytes, **kwargs: Any) -> str:
        raise StoreRefused("PUT: AccessDenied")

    store.put = refused  # type: ignore[method-assign]
    with pytest.raises(StoreRefused):  # a refusal of an existing record stays one
        await schedules_.pause("ws-1", other.schedule_id)


async def test_an_unreadable_record_can_be_deleted() -> None:
    store, clock = MemoryStore(), MovableClock(CREATED)
    await store.put("schedules/ws-1/broken.json", b"[]")
    schedules_ = ScheduleStore(store, clock=clock)
    assert await schedules_.get("ws-1", "broken") is None
    await schedules_.delete("ws-1", "broken")
    assert store.body("schedules/ws-1/broken.json") is None
    with pytest.raises(ScheduleError, match="no schedule"):
        await schedules_.delete("ws-1", "broken")


async def test_stop_ends_a_catch_up_round_after_the_publication_in_progress() -> None:
    store, clock = MemoryStore(), MovableClock(CREATED)
    await _created(store, clock)
    await _created(store, clock)
    stop = asyncio.Event()
    sent: list[str] = []

    class Stopping:
        async def publish(self, message: dict[str, Any]) -> None:
            sent.append(message["from"]["date"])
            stop.set()  # SIGTERM while the first period is being published

    clock.now = CREATED + timedelta(days=30)
    scheduler = Scheduler(
        ScheduleStore(store, clock=clock), Stopping(), interval_s=1, grace_s=7200, clock=clock
    )
    await asyncio.wait_for(scheduler.run(stop), 5)
    assert sent == ["2026-03-11"]  # not the 28 other due days, nor the other schedule's
    # Recorded before stopping (on whichever of the two schedules came first).
    progress = sorted(str(s.published_through) for s in await ScheduleStore(store).list_for("ws-1"))
    assert progress == ["2026-03-11", "None"]


async def test_a_replica_does_not_republish_what_another_recorded_during_its_round() -> None:
    store, clock = MemoryStore(), MovableClock(CREATED)
    await _created(store, clock)
    clock.now = CREATED + timedelta(days=10)
    other = Publisher()
    mine: list[str] = []

    class Overtaken:
        async def publish(self, message: dict[str, Any]) -> None:
            mine.append(message["from"]["date"])
            if len(mine) == 1:  # the other replica runs its whole round meanwhile
                await _scheduler(store, clock, other).run_round()

    scheduler = Scheduler(
        ScheduleStore(store, clock=clock), Overtaken(), interval_s=1, grace_s=7200, clock=clock
    )
    await scheduler.run_round()
    assert len(other.sent) == 9  # March 11 to 19
    assert mine == ["2026-03-11"]  # the rest was recorded by the other replica
    (stored,) = await ScheduleStore(store).list_for("ws-1")
    assert stored.published_through == date(2026, 3, 19)


async def test_pauses_no_later_period_can_end_in_are_forgotten() -> None:
    store, clock, publisher = MemoryStore(), MovableClock(CREATED), Publisher()
    schedule = await _created(store, clock)
    schedules_ = ScheduleStore(store, clock=clock)
    for hour in range(40):  # paused from :50 to :20 every hour, March 12 00:50 UTC on
        clock.now = datetime(2026, 3, 12, 0, 50, tzinfo=UTC) + timedelta(hours=hour)
        await schedules_.pause("ws-1", schedule.schedule_id)
        clock.now += timedelta(minutes=30)
        await schedules_.resume("ws-1", schedule.schedule_id)
    clock.now = datetime(2026, 3, 16, 12, 0, tzinfo=UTC)
    await _scheduler(store, clock, publisher).run_round()
    # Berlin's March 12 ends at 23:00 UTC, inside the pause from 22:50: skipped.
    assert [m["from"]["date"] for m in publisher.sent] == [
        "2026-03-11",
        "2026-03-13",
        "2026-03-14",
        "2026-03-15",
    ]
    stored = await schedules_.get("ws-1", schedule.schedule_id)
    assert stored is not None
    assert stored.published_through == date(2026, 3, 15)
    assert stored.pauses == ()
