"""Schedules (shared.domain.schedules): periods in their zone, due with grace, derived ids."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from shared.contracts.export_buckets import BucketUnit
from shared.contracts.ids import is_valid_id
from shared.domain.schedules import (
    Schedule,
    due_periods,
    first_period,
    next_period,
    pause,
    period_of,
    period_request,
    period_request_id,
    resume,
    schedule_problem,
)
from shared.domain.window import to_ms
from tests.integration.scheduler_process import file_clock

HOUR_MS = 3_600_000
GRACE_MS = 2 * HOUR_MS


def _ms(text: str, zone: str = "UTC") -> int:
    return to_ms(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)))


def _schedule(every: BucketUnit, zone: str, created: str, **fields: object) -> Schedule:
    base = Schedule(
        schedule_id="sched-1",
        org_id="ws-1",
        data_type="users",
        every=every,
        timezone=zone,
        created_ms=_ms(created, zone),
    )
    return replace(base, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("day", "zone", "hours"),
    [
        (date(2026, 3, 29), "Europe/Berlin", 23),  # spring forward
        (date(2026, 10, 25), "Europe/Berlin", 25),  # fall back
        (date(2026, 9, 6), "America/Santiago", 23),  # midnight skipped: the day starts at 01:00
        (date(2026, 4, 4), "America/Santiago", 25),  # 23:00-24:00 repeated
        (date(2026, 10, 4), "Australia/Lord_Howe", 23.5),  # half-hour DST
        (date(2026, 4, 5), "Australia/Lord_Howe", 24.5),
        (date(2026, 1, 15), "Asia/Kathmandu", 24),
    ],
)
def test_a_day_period_is_the_local_day_dst_days_included(
    day: date, zone: str, hours: float
) -> None:
    period = period_of(day, BucketUnit.DAY, ZoneInfo(zone))
    assert (period.first_day, period.last_day) == (day, day)
    assert period.end_ms - period.start_ms == hours * HOUR_MS
    start = datetime.fromtimestamp(period.start_ms / 1000, UTC).astimezone(ZoneInfo(zone))
    assert start.date() == day
    before = datetime.fromtimestamp((period.start_ms - 1) / 1000, UTC).astimezone(ZoneInfo(zone))
    assert before.date() == day - timedelta(days=1)


def test_santiago_day_without_midnight_starts_at_one() -> None:
    period = period_of(date(2026, 9, 6), BucketUnit.DAY, ZoneInfo("America/Santiago"))
    assert period.start_ms == _ms("2026-09-06T01:00", "America/Santiago")


def test_weeks_are_iso_weeks_and_months_calendar_months() -> None:
    zone = ZoneInfo("Europe/Berlin")
    week = period_of(date(2026, 10, 28), BucketUnit.WEEK, zone)  # a Wednesday
    assert (week.first_day, week.last_day) == (date(2026, 10, 26), date(2026, 11, 1))
    fall_back_week = period_of(date(2026, 10, 21), BucketUnit.WEEK, zone)
    assert fall_back_week.end_ms - fall_back_week.start_ms == (7 * 24 + 1) * HOUR_MS
    month = period_of(date(2026, 2, 14), BucketUnit.MONTH, zone)
    assert (month.first_day, month.last_day) == (date(2026, 2, 1), date(2026, 2, 28))
    assert month.name == "2026-02-01_2026-02-28"
    december = period_of(date(2026, 12, 31), BucketUnit.MONTH, zone)
    assert next_period(december, BucketUnit.MONTH, zone).first_day == date(2027, 1, 1)


@pytest.mark.parametrize("every", list(BucketUnit))
@pytest.mark.parametrize("zone", ["America/Santiago", "Australia/Lord_Howe", "Asia/Kolkata"])
def test_consecutive_periods_tile_time(every: BucketUnit, zone: str) -> None:
    tz = ZoneInfo(zone)
    period = period_of(date(2025, 12, 20), every, tz)
    for _ in range(60):
        following = next_period(period, every, tz)
        assert following.start_ms == period.end_ms
        assert following.first_day == period.last_day + timedelta(days=1)
        period = following


def test_first_period_starts_at_or_after_creation() -> None:
    zone = ZoneInfo("Europe/Berlin")
    mid_month = _ms("2026-11-14T10:00", "Europe/Berlin")
    assert first_period(mid_month, BucketUnit.MONTH, zone).first_day == date(2026, 12, 1)
    at_start = _ms("2026-11-01T00:00", "Europe/Berlin")
    assert first_period(at_start, BucketUnit.MONTH, zone).first_day == date(2026, 11, 1)
    assert first_period(at_start + 1, BucketUnit.DAY, zone).first_day == date(2026, 11, 2)


def test_due_needs_the_end_plus_grace() -> None:
    schedule = _schedule(BucketUnit.DAY, "Asia/Tokyo", "2026-05-01T12:00")
    end = _ms("2026-05-03T00:00", "Asia/Tokyo")  # the first period is 2026-05-02
    assert due_periods(schedule, end + GRACE_MS - 1, grace_ms=GRACE_MS) == []
    (due,) = due_periods(schedule, end + GRACE_MS, grace_ms=GRACE_MS)
    assert due.first_day == date(2026, 5, 2)


def test_catch_up_lists_every_due_period_oldest_first_after_published_through() -> None:
    schedule = _schedule(BucketUnit.DAY, "UTC", "2026-05-01T12:00")
    now = _ms("2026-05-10T03:00")
    days = [period.first_day for period in due_periods(schedule, now, grace_ms=GRACE_MS)]
    assert days == [date(2026, 5, day) for day in range(2, 10)]
    later = replace(schedule, published_through=date(2026, 5, 6))
    days = [period.first_day for period in due_periods(later, now, grace_ms=GRACE_MS)]
    assert days == [date(2026, 5, 7), date(2026, 5, 8), date(2026, 5, 9)]
    assert len(due_periods(schedule, now, grace_ms=GRACE_MS, limit=3)) == 3


def test_a_paused_schedule_has_nothing_due_and_skips_periods_ending_while_paused() -> None:
    schedule = _schedule(BucketUnit.DAY, "UTC", "2026-05-01T12:00")
    paused = pause(schedule, _ms("2026-05-03T12:00"))
    assert due_periods(paused, _ms("2026-05-20T00:00"), grace_ms=GRACE_MS) == []
    resumed = resume(paused, _ms("2026-05-06T12:00"))
    due = due_periods(resumed, _ms("2026-05-08T03:00"), grace_ms=GRACE_MS)
    assert [p.first_day for p in due] == [date(2026, 5, day) for day in range(2, 8)]
    # May 2 ended before the pause; May 3, 4, 5 ended while paused; May 6 after the resume.
    assert [p.first_day for p in due if not resumed.skipped(p)] == [
        date(2026, 5, 2),
        date(2026, 5, 6),
        date(2026, 5, 7),
    ]
    assert resume(resumed, _ms("2026-05-09T00:00")) == resumed


def test_derived_request_ids_are_stable_distinct_and_valid() -> None:
    zone = ZoneInfo("UTC")
    periods = [
        period_of(date(2026, 1, 1) + timedelta(days=n), BucketUnit.DAY, zone) for n in range(400)
    ]
    ids = {period_request_id("sched-1", period) for period in periods}
    assert len(ids) == 400
    assert all(is_valid_id(value) for value in ids)
    assert period_request_id("sched-1", periods[0]) == period_request_id("sched-1", periods[0])
    assert period_request_id("sched-2", periods[0]) != period_request_id("sched-1", periods[0])
    assert uuid.UUID(period_request_id("sched-1", periods[0])).version == 5


def test_period_request_is_an_ordinary_request_in_the_schedules_zone() -> None:
    schedule = _schedule(
        BucketUnit.MONTH,
        "Europe/Berlin",
        "2026-10-10T00:00",
        bucket="week",
        format="parquet",
        destination="archive",
        callback_url="https://hooks.example/usage",
        group_by="model",
    )
    period = period_of(date(2026, 11, 5), BucketUnit.MONTH, schedule.zone)
    message = period_request(schedule, period)
    assert message == {
        "request_id": period_request_id("sched-1", period),
        "org_id": "ws-1",
        "data_type": "users",
        "from": {"date": "2026-11-01", "timezone": "Europe/Berlin"},
        "to": {"date": "2026-11-30", "timezone": "Europe/Berlin"},
        "group_by": "model",
        "requested_by": "schedule:sched-1",
        "format": "parquet",
        "bucket": "week",
        "destination": "archive",
        "callback_url": "https://hooks.example/usage",
    }
    assert "destination" not in period_request(replace(schedule, destination=None), period)
    assert "callback_url" not in period_request(replace(schedule, callback_url=None), period)


def test_schedules_are_validated_as_export_requests() -> None:
    now = _ms("2026-11-14T10:00")
    good = _schedule(BucketUnit.WEEK, "Asia/Kolkata", "2026-11-14T10:00")
    assert schedule_problem(good, now) is None
    assert "IANA" in (schedule_problem(replace(good, timezone="Mars/Base"), now) or "")
    assert "data_type" in (schedule_problem(replace(good, data_type="cats"), now) or "")
    assert "group_by" in (schedule_problem(replace(good, group_by="source"), now) or "")
    assert "format" in (schedule_problem(replace(good, format="xlsx"), now) or "")
    assert "bucket" in (schedule_problem(replace(good, bucket="hour"), now) or "")
    assert "destination" in (schedule_problem(replace(good, destination="Bad-Name"), now) or "")
    assert schedule_problem(replace(good, callback_url="https://hooks.example/x"), now) is None


def test_records_round_trip() -> None:
    schedule = pause(
        _schedule(
            BucketUnit.MONTH,
            "UTC",
            "2026-01-01T00:00",
            published_through=date(2026, 3, 31),
            callback_url="https://hooks.example/x",
        ),
        _ms("2026-04-02T00:00"),
    )
    again = Schedule.from_json(schedule.to_json(), "etag")
    assert again == schedule
    assert again.etag == "etag"
    with pytest.raises(ValueError, match="unknown schedule state"):
        Schedule.from_json(schedule.to_json() | {"state": "gone"})


def test_file_clock_is_test_only_and_read_at_every_call(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    path.write_text("2026-05-01T10:00:00+02:00", encoding="utf-8")
    clock = file_clock(path)
    assert clock() == datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
    path.write_text("2026-05-03T00:00:00+00:00", encoding="utf-8")
    assert clock() == datetime(2026, 5, 3, tzinfo=UTC)
    path.write_text("2026-05-03T00:00:00", encoding="utf-8")
    with pytest.raises(ValueError, match="aware"):
        clock()


def test_no_variable_of_a_service_replaces_the_wall_clock() -> None:
    """Production code cannot be moved in time by a stray environment variable: the
    test clock file is an argument of a test-only entry point."""
    root = Path(__file__).resolve().parents[2]
    sources = [*root.joinpath("shared").rglob("*.py"), *root.joinpath("services").rglob("*.py")]
    assert sources
    for source in sources:
        text = source.read_text(encoding="utf-8")
        assert "CLOCK_FILE" not in text, source
        assert "file_clock" not in text, source
