"""Window arithmetic of contract §3: wall-time bounds in their own timezones, resolved to
quarter hours on the Unix epoch.

An event counts iff ``floor15(from) <= occurred_at < ceil15(to + 1 ms)``. Local midnight
is a multiple of 15 minutes since the epoch in every timezone in use today (offsets are
whole quarter hours, +05:30 and +05:45 included), so day-aligned windows are exact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from shared.domain.timezones import is_accepted_zone

QUARTER_MS = 15 * 60 * 1000
DAY_MS = 24 * 60 * 60 * 1000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)

_DATE_ONLY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# A date-time is RFC 3339's shape with the seconds and the offset optional (the ISO 8601
# extended form browsers send: 2026-01-31T18:00): "T"/"Z" in either case, an offset only
# as Z or ±hh:mm. Wall time is what counts: the offset is ignored, as in the reference
# API. Refused (fromisoformat reads them all): a space or another letter for "T", +0530
# and +05, basic and week forms (20260131, 2026-W05-6), an hour alone, a decimal comma.
_DATE_TIME = re.compile(
    r"(?P<wall>[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?)"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?"
)


class WindowError(ValueError):
    """A bound or window the contract rejects; the message tells the caller what to fix."""


def floor15(ms: int) -> int:
    return ms - ms % QUARTER_MS


def ceil15(ms: int) -> int:
    return -((-ms) // QUARTER_MS) * QUARTER_MS


def to_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // _MS


def from_ms(ms: int, zone: ZoneInfo) -> datetime:
    return (_EPOCH + timedelta(milliseconds=ms)).astimezone(zone)


def zone_named(name: str) -> ZoneInfo:
    """The zone of an accepted IANA name (``shared.domain.timezones``): no file paths,
    no ``localtime``, no ``Factory``."""
    if not is_accepted_zone(name):
        raise WindowError(f"timezone {name!r} is not an IANA timezone name (e.g. Europe/Berlin)")
    return ZoneInfo(name)


def parse_wall_time(text: str) -> date | datetime:
    """A bare ``YYYY-MM-DD`` as a ``date``, or the naive wall time of a date-time
    ``YYYY-MM-DDThh:mm[:ss[.fff]]`` with an optional ``Z`` or ``±hh:mm`` (ignored)."""
    if not isinstance(text, str):
        raise WindowError("date must be YYYY-MM-DD or an ISO 8601 date-time")
    if _DATE_ONLY.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError as exc:
            raise WindowError(f"date {text!r} is not a valid calendar date") from exc
    match = _DATE_TIME.fullmatch(text)
    if match is None:
        raise WindowError(
            f"date {text!r} is neither YYYY-MM-DD nor an ISO 8601 date-time like "
            "2026-01-31T18:00:00 (optionally with Z or an offset ±hh:mm, which is ignored)"
        )
    try:
        return datetime.fromisoformat(match["wall"].upper())
    except ValueError as exc:
        raise WindowError(f"date {text!r} is not a valid calendar date and time") from exc


def local_instant_ms(wall: datetime, zone: ZoneInfo) -> int:
    """The instant of a wall time in ``zone``; skipped/repeated times resolve with fold=0."""
    return to_ms(wall.replace(tzinfo=zone, fold=0))


def local_day_start_ms(day: date, zone: ZoneInfo) -> int:
    """The first instant whose local date in ``zone`` is ``day`` (or later).

    Usually local midnight; where a DST change repeats midnight, its first occurrence;
    where a change skips midnight, the instant of the change (the day starts late). A
    day's end is the next day's start, so consecutive local days tile time exactly even
    when a change falls at midnight (Santiago, Beirut, Nuuk, Havana)."""
    midnight = datetime.combine(day, time())
    first = to_ms(midnight.replace(tzinfo=zone, fold=0))
    second = to_ms(midnight.replace(tzinfo=zone, fold=1))
    low, high = min(first, second), max(first, second)
    if from_ms(low, zone).date() >= day:
        return low
    # Midnight was skipped: the day starts at the change, between the two readings.
    while high - low > 1:
        middle = (low + high) // 2
        if from_ms(middle, zone).date() >= day:
            high = middle
        else:
            low = middle
    return high


def bound_ms(bound: date | datetime, zone: ZoneInfo, *, end: bool) -> int:
    """The instant a request bound names: a bare date is the start of that local day
    (``from``) or the last millisecond before the next local day starts (``to``)."""
    if isinstance(bound, datetime):
        return local_instant_ms(bound, zone)
    if end:
        return local_day_start_ms(bound + timedelta(days=1), zone) - 1
    return local_day_start_ms(bound, zone)


@dataclass(frozen=True, slots=True)
class Window:
    """A resolved export window: ``start_ms <= t < end_ms`` on quarter-hour boundaries."""

    start_ms: int
    end_ms: int
    from_zone: ZoneInfo
    to_zone: ZoneInfo

    @property
    def last_ms(self) -> int:
        """The window's inclusive end, for display (``end_ms - 1 ms``)."""
        return self.end_ms - 1

    def period_start(self) -> date:
        return from_ms(self.start_ms, self.from_zone).date()

    def period_end(self) -> date:
        return from_ms(self.last_ms, self.to_zone).date()

    def date_range(self) -> dict[str, str]:
        return {
            "from": format_instant(self.start_ms, self.from_zone),
            "to": format_instant(self.last_ms, self.to_zone),
        }

    def contains(self, ms: int) -> bool:
        return self.start_ms <= ms < self.end_ms

    def utc_days(self) -> list[date]:
        """Every UTC day the window touches, in order."""
        first = self.start_ms // DAY_MS
        last = (self.end_ms - 1) // DAY_MS
        return [date(1970, 1, 1) + timedelta(days=day) for day in range(first, last + 1)]

    def covers_whole_day(self, day: date) -> bool:
        start = day_start_ms(day)
        return self.start_ms <= start and start + DAY_MS <= self.end_ms


def day_start_ms(day: date) -> int:
    return (day - date(1970, 1, 1)).days * DAY_MS


def utc_day_of(ms: int) -> date:
    return date(1970, 1, 1) + timedelta(days=ms // DAY_MS)


def format_instant(ms: int, zone: ZoneInfo) -> str:
    """``2026-01-31T23:59:59.999+01:00``: local time with offset, millisecond precision;
    a zero offset is written ``Z``, as the reference API shows for UTC."""
    moment = from_ms(ms, zone)
    text = moment.isoformat(timespec="milliseconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def months_before(day: date, months: int) -> date:
    """The same day-of-month ``months`` earlier, clamped to the month's last day."""
    month_index = day.year * 12 + (day.month - 1) - months
    year, month = divmod(month_index, 12)
    month += 1
    for candidate in (day.day, 30, 29, 28):
        try:
            return date(year, month, min(day.day, candidate))
        except ValueError:
            continue
    raise AssertionError("unreachable")  # pragma: no cover


def resolve_window(
    from_date: str, from_tz: str, to_date: str, to_tz: str, *, now: datetime, max_months: int = 12
) -> Window:
    """Resolve request bounds per contract §3, clamping ``to`` to ``now``.

    Raises :class:`WindowError` for a bad date or timezone, ``to`` before ``from``, or a
    ``from`` earlier than the start of the local day ``max_months`` calendar months
    before today (today in ``from``'s timezone).
    """
    from_zone = zone_named(from_tz)
    to_zone = zone_named(to_tz)
    start_ms = floor15(bound_ms(parse_wall_time(from_date), from_zone, end=False))
    to_ms_requested = bound_ms(parse_wall_time(to_date), to_zone, end=True)
    now_ms = to_ms(now)
    if to_ms_requested < start_ms:
        raise WindowError("'to' is before 'from': the window would be empty")
    to_ms_clamped = min(to_ms_requested, now_ms)
    today = from_ms(now_ms, from_zone).date()
    earliest_day = months_before(today, max_months)
    earliest_ms = local_day_start_ms(earliest_day, from_zone)
    if start_ms < floor15(earliest_ms):
        raise WindowError(
            f"'from' is more than {max_months} months ago: the earliest allowed start is "
            f"{earliest_day.isoformat()} in {from_zone.key}"
        )
    if to_ms_clamped < start_ms:
        raise WindowError("'from' is in the future: the window would be empty")
    end_ms = ceil15(to_ms_clamped + 1)
    return Window(start_ms=start_ms, end_ms=end_ms, from_zone=from_zone, to_zone=to_zone)
