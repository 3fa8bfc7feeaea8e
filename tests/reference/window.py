"""Contract §3: validating an export request and resolving its window to instants."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

from tests.reference.parsing import twelve_months_before

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_QUARTER_US = 15 * 60 * 1_000_000
_MS = timedelta(milliseconds=1)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_WALL = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?"
    r"(?:[Zz]|([+-])(\d{2}):(\d{2}))?",
    re.ASCII,
)
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}", re.ASCII)

DATA_TYPES = {
    "users": "users",
    "assistants": "assistants",
    "agents": "assistants",
    "api_keys": "api_keys",
    "projects": "projects",
    "models": "models",
}
GROUP_BYS = {
    "users": ("model",),
    "assistants": ("model",),
    "api_keys": ("model",),
    "projects": (),
    "models": ("source", "deployment"),
}


class RequestRejected(Exception):
    """The exporter answers this request with ``status`` (400, or 404 for no rows)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Window:
    """``start <= occurred_at < end`` (UTC instants), plus how the export labels it."""

    start: datetime
    end: datetime
    period_start: str
    period_end: str
    date_range: dict[str, str]
    #: When attributes and existence are read (a bucket's: its export window's end).
    attributes_at: datetime | None = None

    @property
    def as_of(self) -> datetime:
        return self.end if self.attributes_at is None else self.attributes_at


#: In ``available_timezones()`` but not places (contract §3): the host's own zone, IANA's
#: "unspecified" zone, and the tz database's copies with another meaning.
NOT_ZONES = frozenset({"localtime", "Factory", "posixrules"})
_COPIES = frozenset({"posix", "right"})


@lru_cache(maxsize=1)
def accepted_zones() -> frozenset[str]:
    return frozenset(
        name
        for name in available_timezones()
        if name not in NOT_ZONES and name.split("/", 1)[0] not in _COPIES
    )


def zone(name: str) -> ZoneInfo:
    if not isinstance(name, str) or name not in accepted_zones():
        raise RequestRejected(400, f"unknown timezone {name!r}")
    return ZoneInfo(name)


def check_id(name: str, value: object) -> str:
    if not isinstance(value, str) or _ID.fullmatch(value) is None or ".." in value:
        raise RequestRejected(400, f"invalid {name}")
    return value


def wall_time(text: str) -> date | datetime:
    """A bare date as such, or the naive local wall time a date-time names: date, "T" (or
    "t"), hours and minutes, optional seconds and fraction, optional ``Z`` or ``±hh:mm``
    (which is ignored)."""
    if not isinstance(text, str):
        raise RequestRejected(400, "date must be a string")
    try:
        if _DATE.fullmatch(text):
            return date.fromisoformat(text)
        match = _WALL.fullmatch(text)
        if match is None:
            raise ValueError(text)
        year, month, day, hour, minute, second, fraction, sign, off_h, off_m = match.groups()
        if sign is not None and (int(off_h) > 23 or int(off_m) > 59):
            raise ValueError(text)
        micros = int((fraction or "")[:6].ljust(6, "0"))
        clock = (int(hour), int(minute), int(second or "0"), micros)
        return datetime(int(year), int(month), int(day), *clock)
    except ValueError:
        raise RequestRejected(400, f"invalid date {text!r}") from None


def first_instant_of(day: date, tz: ZoneInfo) -> datetime:
    """The first instant whose local date in ``tz`` is ``day``: a walk in 15-minute steps
    from before any offset's midnight, then a bisection to the millisecond. (Production
    reads zoneinfo's two folds instead; this does not rely on fold rules at all.)"""
    step = timedelta(minutes=15)
    probe = datetime.combine(day, time(0), tzinfo=UTC) - timedelta(hours=15)
    while probe.astimezone(tz).date() < day:
        probe += step
    low, high = probe - step, probe
    while high - low > _MS:
        middle = low + (high - low) // 2
        middle -= timedelta(microseconds=middle.microsecond % 1000)
        if middle.astimezone(tz).date() >= day:
            high = middle
        else:
            low = middle if middle > low else low + _MS
    return high


def bound_instant(bound: date | datetime, tz: ZoneInfo, *, is_end: bool) -> datetime:
    """A date-time bound resolves with fold=0; a bare date ``from`` is the first instant
    of that local day, a bare date ``to`` the last millisecond before the next day's."""
    if isinstance(bound, datetime):
        return bound.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if is_end:
        return first_instant_of(bound + timedelta(days=1), tz) - _MS
    return first_instant_of(bound, tz)


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def floor15(moment: datetime) -> datetime:
    micros = _micros(moment)
    return _EPOCH + timedelta(microseconds=micros - micros % _QUARTER_US)


def ceil15(moment: datetime) -> datetime:
    micros = _micros(moment)
    return _EPOCH + timedelta(microseconds=-((-micros) // _QUARTER_US) * _QUARTER_US)


def render_instant(moment: datetime, tz: ZoneInfo) -> str:
    """Millisecond ISO 8601 in ``tz`` with its offset; a zero offset is written ``Z``."""
    local = moment.astimezone(tz)
    offset = local.utcoffset() or timedelta(0)
    if offset == timedelta(0):
        suffix = "Z"
    else:
        minutes = int(abs(offset).total_seconds()) // 60
        sign = "-" if offset < timedelta(0) else "+"
        suffix = f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    return local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond // 1000:03d}{suffix}"


def resolve_window(
    *, from_date: str, from_tz: str, to_date: str, to_tz: str, now: datetime
) -> Window:
    """The window of a request, or :class:`RequestRejected` (400) as the exporter would."""
    start_zone, end_zone = zone(from_tz), zone(to_tz)
    start_wall = wall_time(from_date)
    raw_from = bound_instant(start_wall, start_zone, is_end=False)
    raw_to = bound_instant(wall_time(to_date), end_zone, is_end=True)
    if raw_to < raw_from:
        raise RequestRejected(400, "to is before from")
    # "12 months before now" is judged on local dates so that a date picked exactly one
    # year back is accepted all day long (decision 11).
    today = now.astimezone(start_zone).date()
    oldest = twelve_months_before(datetime.combine(today, time(0))).date()
    start_day = start_wall.date() if isinstance(start_wall, datetime) else start_wall
    if start_day < oldest:
        raw_from_text = start_day.isoformat()
        raise RequestRejected(400, f"from {raw_from_text} is more than 12 months before now")
    clamped_to = min(raw_to, now.astimezone(UTC))
    if clamped_to < raw_from:
        raise RequestRejected(400, "from is in the future")
    start = floor15(raw_from)
    end = ceil15(clamped_to + _MS)
    last = end - _MS
    return Window(
        start=start,
        end=end,
        period_start=start.astimezone(start_zone).date().isoformat(),
        period_end=last.astimezone(end_zone).date().isoformat(),
        date_range={
            "from": render_instant(start, start_zone),
            "to": render_instant(last, end_zone),
        },
    )
