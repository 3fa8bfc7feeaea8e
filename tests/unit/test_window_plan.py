"""Which documents a window is read from: month rollups only for UTC months the window
covers whole, day heads for the other whole UTC days, facts for the partial ones."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from shared.domain.window import Window, resolve_window
from shared.domain.window_plan import days_of_month, months_touched, plan_window, whole_months

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def window(start: str, end: str, zone: str = "UTC", *, now: datetime = NOW) -> Window:
    return resolve_window(start, zone, end, zone, now=now)


def span(first: date, last: date) -> list[date]:
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def every_day(w: Window) -> set[date]:
    return set(w.utc_days())


def test_twelve_months_to_now_uses_the_eleven_closed_whole_months() -> None:
    w = window("2025-03-10", "2026-03-10")  # clamped to NOW: today is partial
    plan = plan_window(w, every_day(w))
    assert plan.rollup_months == [date(2025, month, 1) for month in range(4, 13)] + [
        date(2026, 1, 1),
        date(2026, 2, 1),
    ]
    assert plan.head_days == span(date(2025, 3, 10), date(2025, 3, 31)) + span(
        date(2026, 3, 1), date(2026, 3, 9)
    )
    assert plan.fact_days == [date(2026, 3, 10)]


def test_every_day_is_read_exactly_once() -> None:
    w = window("2025-03-10", "2026-03-10")
    plan = plan_window(w, every_day(w))
    from_months = [day for month in plan.rollup_months for day in days_of_month(month)]
    everything = from_months + plan.head_days + plan.fact_days
    assert sorted(everything) == w.utc_days()


def test_a_window_of_exactly_one_utc_month_is_one_rollup() -> None:
    w = window("2025-04-01", "2025-04-30")
    plan = plan_window(w, every_day(w))
    assert (plan.rollup_months, plan.head_days, plan.fact_days) == ([date(2025, 4, 1)], [], [])


def test_the_current_month_is_read_day_by_day() -> None:
    w = window("2026-03-01", "2026-03-31")  # ends now, on the 10th
    plan = plan_window(w, every_day(w))
    assert plan.rollup_months == []
    assert plan.head_days == span(date(2026, 3, 1), date(2026, 3, 9))
    assert plan.fact_days == [date(2026, 3, 10)]


def test_berlin_across_dst_rollups_only_for_whole_utc_days() -> None:
    # 2025-10-01 00:00 CEST is 09-30 22:00 UTC; 2025-11-30 24:00 CET is 23:00 UTC.
    w = window("2025-10-01", "2025-11-30", "Europe/Berlin")
    plan = plan_window(w, every_day(w))
    assert plan.rollup_months == [date(2025, 10, 1)]  # the DST change (26 October) inside
    assert plan.head_days == span(date(2025, 11, 1), date(2025, 11, 29))
    assert plan.fact_days == [date(2025, 9, 30), date(2025, 11, 30)]


def test_kolkata_window_leaves_its_last_utc_day_partial() -> None:
    # 2025-04-01 00:00 +05:30 = 03-31 18:30 UTC; the end is 05-31 18:30 UTC.
    w = window("2025-04-01", "2025-05-31", "Asia/Kolkata")
    plan = plan_window(w, every_day(w))
    assert plan.rollup_months == [date(2025, 4, 1)]
    assert plan.head_days == span(date(2025, 5, 1), date(2025, 5, 30))
    assert plan.fact_days == [date(2025, 3, 31), date(2025, 5, 31)]


def test_a_window_ending_a_quarter_hour_before_midnight_excludes_the_month() -> None:
    w = resolve_window("2025-04-01", "UTC", "2025-04-30T23:44:00", "UTC", now=NOW)
    plan = plan_window(w, every_day(w))
    assert plan.rollup_months == []
    assert plan.fact_days == [date(2025, 4, 30)]
    assert whole_months(w) == []


def test_days_without_data_are_skipped_and_empty_months_need_no_rollup() -> None:
    w = window("2025-03-10", "2026-03-10")
    existing = {date(2025, 3, 20), date(2025, 6, 3), date(2025, 6, 4), date(2026, 3, 10)}
    plan = plan_window(w, existing)
    assert plan.rollup_months == [date(2025, 6, 1)]
    assert plan.head_days == [date(2025, 3, 20)]
    assert plan.fact_days == [date(2026, 3, 10)]


def test_without_rollups_every_whole_day_is_a_head_day() -> None:
    w = window("2025-03-10", "2026-03-10")
    plan = plan_window(w, every_day(w), use_rollups=False)
    assert plan.rollup_months == []
    assert plan.head_days == [day for day in w.utc_days() if w.covers_whole_day(day)]


def test_month_arithmetic() -> None:
    assert len(days_of_month(date(2024, 2, 17))) == 29
    assert days_of_month(date(2025, 12, 31))[-1] == date(2025, 12, 31)
    w = window("2025-11-15", "2026-01-02")
    assert months_touched(w) == [date(2025, 11, 1), date(2025, 12, 1), date(2026, 1, 1)]
    assert whole_months(w) == [date(2025, 12, 1)]
