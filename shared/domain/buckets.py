"""A window cut into time buckets (contract §3, ``bucket``).

Buckets are calendar days, ISO weeks (Monday to Sunday) or calendar months of the
``from`` bound's timezone. A bucket starts where its first local day starts
(``shared.domain.window.local_day_start_ms``: local midnight, or the DST change where one
skips midnight), on a quarter hour like the window's bounds; the first and the last
bucket are clipped to the window. The buckets tile the window exactly: each instant of it
is in one bucket, so an event counts in exactly one bucket's row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from shared.contracts.export_buckets import MAX_BUCKETS, BucketUnit
from shared.domain.window import Window, WindowError, floor15, from_ms, local_day_start_ms


@dataclass(frozen=True, slots=True)
class Bucket:
    """``start_ms <= t < end_ms``; ``first_day``/``last_day``: its local dates, inclusive
    (the file's ``bucket_start`` and ``bucket_end``)."""

    start_ms: int
    end_ms: int
    first_day: date
    last_day: date


def next_start(day: date, unit: BucketUnit) -> date:
    """The first local date of the bucket after the one holding ``day``."""
    if unit is BucketUnit.DAY:
        return day + timedelta(days=1)
    if unit is BucketUnit.WEEK:
        return day + timedelta(days=7 - day.weekday())
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def buckets(window: Window, unit: BucketUnit) -> list[Bucket]:
    """The window's buckets in time order. Raises :class:`WindowError` when there would be
    more than ``MAX_BUCKETS``."""
    zone = window.from_zone
    found: list[Bucket] = []
    start = window.start_ms
    day = from_ms(start, zone).date()
    while start < window.end_ms:
        if len(found) == MAX_BUCKETS:
            raise WindowError(
                f"the window would make more than {MAX_BUCKETS} {unit.value} buckets: "
                "use a larger bucket or a shorter window"
            )
        day = next_start(day, unit)
        end = min(floor15(local_day_start_ms(day, zone)), window.end_ms)
        found.append(Bucket(start, end, from_ms(start, zone).date(), from_ms(end - 1, zone).date()))
        start = end
    return found
