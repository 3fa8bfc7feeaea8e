"""Window arithmetic of contract §3 across DST changes and +05:30/+05:45/-03:30 zones."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from shared.domain.window import (
    DAY_MS,
    QUARTER_MS,
    WindowError,
    ceil15,
    floor15,
    months_before,
    resolve_window,
    to_ms,
)

NOW = datetime(2026, 11, 22, 19, 3, 12, 345_000, tzinfo=UTC)


def ms(text: str) -> int:
    return to_ms(datetime.fromisoformat(text))


def test_quarter_rounding() -> None:
    assert floor15(QUARTER_MS + 1) == QUARTER_MS
    assert ceil15(QUARTER_MS + 1) == 2 * QUARTER_MS
    assert ceil15(QUARTER_MS) == QUARTER_MS
    assert floor15(-1) == -QUARTER_MS


@pytest.mark.parametrize(
    ("zone", "day", "start", "end"),
    [
        ("UTC", "2026-03-29", "2026-03-29T00:00:00+00:00", "2026-03-30T00:00:00+00:00"),
        # Spring forward in Berlin: the local day has 23 hours.
        ("Europe/Berlin", "2026-03-29", "2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00"),
        # Fall back in Berlin: 25 hours.
        ("Europe/Berlin", "2026-10-25", "2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00"),
        ("Asia/Kolkata", "2026-06-01", "2026-06-01T00:00:00+05:30", "2026-06-02T00:00:00+05:30"),
        ("Asia/Kathmandu", "2026-06-01", "2026-06-01T00:00:00+05:45", "2026-06-02T00:00:00+05:45"),
        (
            "America/St_Johns",
            "2026-03-08",
            "2026-03-08T00:00:00-03:30",
            "2026-03-09T00:00:00-02:30",
        ),
    ],
)
def test_a_local_day_is_exactly_its_instants(zone: str, day: str, start: str, end: str) -> None:
    window = resolve_window(day, zone, day, zone, now=NOW)
    assert window.start_ms == ms(start)
    assert window.end_ms == ms(end)
    assert window.period_start() == window.period_end() == date.fromisoformat(day)


def test_berlin_dst_month_has_one_hour_less() -> None:
    window = resolve_window("2026-03-01", "Europe/Berlin", "2026-03-31", "Europe/Berlin", now=NOW)
    assert window.end_ms - window.start_ms == 31 * DAY_MS - 3600_000
    assert window.date_range() == {
        "from": "2026-03-01T00:00:00.000+01:00",
        "to": "2026-03-31T23:59:59.999+02:00",
    }


def test_trailing_offset_is_ignored_wall_time_counts() -> None:
    window = resolve_window(
        "2026-01-01T00:00:00.000Z",
        "Europe/Berlin",
        "2026-01-31T23:59:59.999Z",
        "Europe/Berlin",
        now=NOW,
    )
    assert window.start_ms == ms("2026-01-01T00:00:00+01:00")
    assert window.end_ms == ms("2026-02-01T00:00:00+01:00")


def test_each_bound_has_its_own_timezone() -> None:
    window = resolve_window(
        "2026-06-01", "Asia/Kathmandu", "2026-06-01", "America/St_Johns", now=NOW
    )
    assert window.start_ms == ms("2026-06-01T00:00:00+05:45")
    assert window.end_ms == ms("2026-06-02T00:00:00-02:30")
    assert window.date_range()["to"] == "2026-06-01T23:59:59.999-02:30"


def test_odd_times_are_widened_to_quarter_hours() -> None:
    window = resolve_window("2026-06-01T10:07:00", "UTC", "2026-06-01T10:20:00", "UTC", now=NOW)
    assert window.start_ms == ms("2026-06-01T10:00:00+00:00")
    assert window.end_ms == ms("2026-06-01T10:30:00+00:00")


def test_skipped_wall_time_resolves_with_fold_zero() -> None:
    # 02:30 does not exist in Berlin on 2026-03-29; fold=0 maps it with the old offset.
    window = resolve_window(
        "2026-03-29T02:30:00", "Europe/Berlin", "2026-03-29", "Europe/Berlin", now=NOW
    )
    assert window.start_ms == ms("2026-03-29T02:30:00+01:00")


def test_future_to_is_clamped_to_now() -> None:
    window = resolve_window("2026-11-01", "UTC", "2027-01-31", "UTC", now=NOW)
    assert window.end_ms == ceil15(to_ms(NOW) + 1)
    assert window.period_end() == date(2026, 11, 22)


@pytest.mark.parametrize(
    ("from_date", "from_tz", "to_date", "to_tz", "message"),
    [
        ("2026-02-01", "UTC", "2026-01-01", "UTC", "before 'from'"),
        ("2025-11-21", "UTC", "2026-01-01", "UTC", "more than 12 months"),
        ("2026-01-01", "Mars/Olympus", "2026-01-02", "UTC", "IANA"),
        ("2026-01-01", "UTC", "2026-01-02", "../etc/passwd", "IANA"),
        ("2026-02-30", "UTC", "2026-03-02", "UTC", "calendar date"),
        ("yesterday", "UTC", "2026-03-02", "UTC", "ISO 8601"),
        ("2026-12-01", "UTC", "2026-12-02", "UTC", "future"),
    ],
)
def test_rejections_tell_what_to_fix(
    from_date: str, from_tz: str, to_date: str, to_tz: str, message: str
) -> None:
    with pytest.raises(WindowError, match=message):
        resolve_window(from_date, from_tz, to_date, to_tz, now=NOW)


def test_twelve_months_back_is_allowed_exactly() -> None:
    window = resolve_window("2025-11-22", "UTC", "2025-11-30", "UTC", now=NOW)
    assert window.period_start() == date(2025, 11, 22)


def test_months_before_clamps_to_month_end() -> None:
    assert months_before(date(2026, 3, 31), 1) == date(2026, 2, 28)
    assert months_before(date(2024, 2, 29), 12) == date(2023, 2, 28)
    assert months_before(date(2026, 1, 15), 12) == date(2025, 1, 15)


def test_utc_days_and_whole_day_coverage() -> None:
    window = resolve_window("2026-06-01", "Asia/Kolkata", "2026-06-02", "Asia/Kolkata", now=NOW)
    days = window.utc_days()
    assert days == [date(2026, 5, 31), date(2026, 6, 1), date(2026, 6, 2)]
    assert [window.covers_whole_day(day) for day in days] == [False, True, False]
