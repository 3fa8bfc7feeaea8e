"""Which stored documents an export window is read from, as a pure function.

A window's UTC days fall into three groups:

* **rollup months**: calendar months (UTC) every day of which the window covers whole;
  such a month is read from its month rollup (one document per aggregate part), when the
  rollup is fresh;
* **head days**: the other days the window covers whole, read from their day heads;
* **fact days**: the (at most two) days the window covers only in part, read from their
  facts and filtered to the window's instants.

Only whole UTC days can come from a rollup, whatever the window's timezones: a window in
Europe/Berlin covers its first and last UTC days in part, so those stay fact days and can
push a month out of the rollup group. A month with a day outside the window — the
current month, or a month the window starts or ends in — is read day by day.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, timedelta

from shared.domain.window import Window


@dataclass(frozen=True, slots=True)
class WindowPlan:
    rollup_months: list[date]  # first day of each month read from its rollup
    head_days: list[date]
    fact_days: list[date]


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(month: date) -> date:
    return (month.replace(day=28) + timedelta(days=4)).replace(day=1)


def days_of_month(month: date) -> list[date]:
    first = month_start(month)
    count = (next_month(first) - first).days
    return [first + timedelta(days=offset) for offset in range(count)]


def months_touched(window: Window) -> list[date]:
    """The first day of every UTC month the window touches, in order."""
    months: list[date] = []
    for day in window.utc_days():
        month = month_start(day)
        if not months or months[-1] != month:
            months.append(month)
    return months


def whole_months(window: Window) -> list[date]:
    """Months whose every UTC day the window covers whole."""
    return [
        month
        for month in months_touched(window)
        if all(window.covers_whole_day(day) for day in (month, days_of_month(month)[-1]))
    ]


def plan_window(
    window: Window, existing: Collection[date], *, use_rollups: bool = True
) -> WindowPlan:
    """The plan for ``window`` given the days that have a head (others are skipped)."""
    rollup_months = set(whole_months(window)) if use_rollups else set()
    used_months: set[date] = set()
    head_days: list[date] = []
    fact_days: list[date] = []
    for day in window.utc_days():
        if day not in existing:
            continue
        if not window.covers_whole_day(day):
            fact_days.append(day)
        elif month_start(day) in rollup_months:
            used_months.add(month_start(day))
        else:
            head_days.append(day)
    return WindowPlan(rollup_months=sorted(used_months), head_days=head_days, fact_days=fact_days)
