"""Export windows at their edges, and events exactly on those edges (issue 11, item 5).

Shared by the unit tier (``test_export_edges.py``: production's in-process path against
the oracle) and the integration tier (``tests/integration/test_export_edges.py``: the
same comparison through the real broker and store).

Everything is relative to one ``now`` (the caller takes it from ``shared.clock``): the
offset changes of each zone are found by scanning its offsets over the last 12 months,
so the windows land on a DST change, on the 12-month edge and on ordinary days whatever
the date. The bounds are computed here with the standard library alone, not with either
implementation's window code: a bare date is the first instant whose local date is that
day (``day_start_ms``: local midnight read at every quarter-hour offset, or the offset
change that starts the day late), a ``to`` date the last millisecond before the next
day's start; a date-time is wall time with ``fold=0``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
QUARTER_MS = 15 * 60 * 1000
LAST_MS_OF_DAY = time(23, 59, 59, 999_000)

# (zone, why it is here). Every zone but the first five changes its offset twice a year.
EDGE_ZONES: list[tuple[str, str]] = [
    ("UTC", "no offset"),
    ("Asia/Kolkata", "+05:30"),
    ("Asia/Kathmandu", "+05:45"),
    ("America/Sao_Paulo", "southern hemisphere, DST abolished in 2019"),
    ("Asia/Tokyo", "no DST, far east"),
    ("Australia/Sydney", "southern hemisphere DST"),
    ("America/Santiago", "southern DST, changes at local midnight (24:00 -> 23:00 in April)"),
    ("America/Havana", "DST change at local midnight (00:00 -> 01:00 in March)"),
    ("Asia/Beirut", "DST change at local midnight (both ways)"),
    ("Pacific/Chatham", "+12:45/+13:45"),
    ("Australia/Lord_Howe", "30-minute DST"),
    ("Europe/Berlin", "northern DST"),
    ("America/St_Johns", "-03:30/-02:30"),
]
DST_ZONES = frozenset(name for name, _ in EDGE_ZONES[5:])


def ms_of(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(milliseconds=1)


def moment_of(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def wall_ms(wall: datetime, zone: ZoneInfo) -> int:
    """The instant of a naive wall time in ``zone`` (``fold=0``: the earlier of a repeated
    wall time, the pre-change offset for a skipped one)."""
    return ms_of(wall.replace(tzinfo=zone, fold=0))


def transitions(zone: ZoneInfo, since_ms: int, until_ms: int) -> list[int]:
    """Every instant (ms) in ``(since_ms, until_ms]`` at which ``zone``'s offset changes.

    Offsets are sampled every 12 hours (zones change at most a few times a year) and each
    change is bisected to the second (tz data has whole-second instants)."""

    def offset(second: int) -> timedelta | None:
        return (EPOCH + timedelta(seconds=second)).astimezone(zone).utcoffset()

    found: list[int] = []
    step = 12 * 3600
    second, last = since_ms // 1000, until_ms // 1000
    current = offset(second)
    while second < last:
        following = min(second + step, last)
        changed = offset(following)
        if changed != current:
            low, high = second, following
            while high - low > 1:
                middle = (low + high) // 2
                if offset(middle) == current:
                    low = middle
                else:
                    high = middle
            found.append(high * 1000)
        second, current = following, changed
    return found


def day_start_ms(day: date, zone: ZoneInfo) -> int:
    """The first instant whose local date in ``zone`` is ``day``, by search: local
    midnight's digits less every quarter-hour offset (-16 h .. +16 h), and every offset
    change within two days, whichever is the earliest instant of ``day``."""
    digits = ms_of(datetime.combine(day, time(), UTC))
    candidates = [digits - quarter * QUARTER_MS for quarter in range(-64, 65)]
    candidates += transitions(zone, digits - 2 * 86_400_000, digits + 2 * 86_400_000)
    return min(
        ms for ms in candidates if local_day(ms, zone) >= day and local_day(ms - 1, zone) < day
    )


def one_year_before(day: date) -> date:
    """The same calendar day 12 months earlier (29 February -> 28 February)."""
    try:
        return day.replace(year=day.year - 1)
    except ValueError:
        return day.replace(year=day.year - 1, day=28)


@dataclass(frozen=True)
class EdgeWindow:
    from_date: str
    from_tz: str
    to_date: str
    to_tz: str
    label: str

    def bounds_ms(self) -> tuple[int, int]:
        """``[start, end)`` per contract §3, from the standard library alone (no clamping:
        edge windows end in the past)."""
        start_zone = ZoneInfo(self.from_tz)
        if len(self.from_date) > 10:  # a date-time: its offset suffix is ignored
            start_wall = datetime.fromisoformat(self.from_date.removesuffix("Z"))
            start = wall_ms(start_wall, start_zone)
        else:
            start = day_start_ms(date.fromisoformat(self.from_date), start_zone)
        next_day = date.fromisoformat(self.to_date) + timedelta(days=1)
        last = day_start_ms(next_day, ZoneInfo(self.to_tz)) - 1
        start -= start % QUARTER_MS
        end = -((-(last + 1)) // QUARTER_MS) * QUARTER_MS
        return start, end


def local_day(ms: int, zone: ZoneInfo) -> date:
    return moment_of(ms).astimezone(zone).date()


def edge_windows(zone_name: str, now: datetime) -> tuple[list[EdgeWindow], list[int]]:
    """The windows to test in ``zone_name`` at ``now``, and the zone's offset changes in
    the last 12 months (ms) whose local days they cover."""
    zone = ZoneInfo(zone_name)
    today = now.astimezone(zone).date()
    earliest = one_year_before(today)
    ordinary = today - timedelta(days=30)
    windows = [
        # The 12-month edge: the earliest allowed local day, and the day before it (400).
        EdgeWindow(str(earliest), zone_name, str(earliest + timedelta(days=1)), zone_name, "12m"),
        EdgeWindow(str(earliest - timedelta(days=1)), zone_name, str(earliest), zone_name, "12m-1"),
        # An ordinary day, and one ending in another timezone (each bound has its own).
        EdgeWindow(str(ordinary), zone_name, str(ordinary), zone_name, "day"),
        EdgeWindow(
            str(today - timedelta(days=40)),
            zone_name,
            str(today - timedelta(days=38)),
            "Pacific/Chatham" if zone_name != "Pacific/Chatham" else "UTC",
            "mixed",
        ),
    ]
    changes = transitions(
        zone,
        ms_of(datetime.combine(earliest + timedelta(days=3), time(), UTC)),
        ms_of(now - timedelta(days=3)),
    )
    for change in changes:
        before, after = local_day(change - 1, zone), local_day(change, zone)
        for day in sorted({before - timedelta(days=1), before, after, after + timedelta(days=1)}):
            windows.append(EdgeWindow(str(day), zone_name, str(day), zone_name, f"dst-{day}"))
        span = EdgeWindow(
            str(before - timedelta(days=1)),
            zone_name,
            str(after + timedelta(days=1)),
            zone_name,
            "dst-span",
        )
        windows.append(span)
        # A date-time bound on the change's own wall time (offset suffix ignored).
        wall = moment_of(change).astimezone(zone).replace(tzinfo=None)
        windows.append(
            EdgeWindow(
                wall.isoformat(timespec="milliseconds") + "Z",
                zone_name,
                str(after),
                zone_name,
                "dst-wall",
            )
        )
    return windows, changes


@dataclass(frozen=True)
class EdgeEvent:
    """One event placed on an instant that matters; its user (and API key) is its own."""

    ms: int
    user_id: str
    key_id: str
    payload: dict[str, Any]

    def value(self) -> bytes:
        return orjson.dumps(self.payload)


# Names that are not ASCII: astral characters, combining marks, right-to-left text.
UNICODE_NAMES = [
    "Zoë Ångström",
    "e\u0301te\u0301 (combining)",
    "עברית שלום",
    "العربية مرحبا",
    "𝒜𝓈𝓉𝓇𝒶𝓁 🧑‍💻 𠜎",
    "Ⅻ ǅ ß ﬁ",
]


def instants_of(window: EdgeWindow, changes: list[int]) -> list[int]:
    """Bound - 1 ms and bound at both ends; each change - 1 ms, at it, and 30 min after."""
    start, end = window.bounds_ms()
    points = [start - 1, start, end - 1, end]
    for change in changes:
        points += [change - 1, change, change + 30 * 60 * 1000]
    return points


def edge_events(org_id: str, instants: list[int], *, now: datetime) -> list[EdgeEvent]:
    """A message, an API request and a pay-as-you-go charge at each distinct past instant,
    each with its own user and API key, plus settings and names before them all."""
    events: list[EdgeEvent] = []
    now_ms = ms_of(now)
    # Ingest accepts events from the UTC day 12 months and one day back: an instant before
    # it (the start of the refused "12m-1" window, in a zone east of UTC for most of the
    # UTC day) would be a dead letter, not an edge case. Settings and names come first.
    oldest = datetime.combine(one_year_before(now.astimezone(UTC).date()), time(), UTC)
    oldest_ms = ms_of(oldest - timedelta(days=1))
    distinct = sorted({ms for ms in instants if oldest_ms <= ms < now_ms - 60_000})
    first = max(min(distinct) - 3_600_000, oldest_ms)
    tag = uuid.uuid4().hex[:8]

    def at(ms: int) -> str:
        return moment_of(ms).isoformat(timespec="milliseconds")

    def event(kind: str, ms: int, user: str, key: str, **fields: Any) -> EdgeEvent:
        payload = {
            "event_id": f"edge-{tag}-{len(events)}",
            "type": kind,
            "org_id": org_id,
            "occurred_at": at(ms),
            **fields,
        }
        return EdgeEvent(ms=ms, user_id=user, key_id=key, payload=payload)

    events.append(event("workspace_settings", first, "", "", byok=True))
    for index, ms in enumerate(distinct):
        user, key = f"u{index:03d}-{ms}", f"k{index:03d}-{ms}"
        name = UNICODE_NAMES[index % len(UNICODE_NAMES)]
        events.append(
            event(
                "user_upserted",
                first,
                user,
                key,
                user_id=user,
                name=f"{name} {index}",
                email=f"{name.split()[0]}.{index}@exämple.org",
            )
        )
        model = ["gpt-4.1", "模型-ü", "مدل"][index % 3]
        events.append(
            event(
                "message",
                ms,
                user,
                key,
                user_id=user,
                assistant_id=f"a{index % 3}",
                project_id=f"p{index % 2}",
                conversation_id=f"c{index % 4}",
                model=model,
                provider="prov",
                deployment=["eu", "ασία"][index % 2],
                usage={"prompt_tokens": 10 + index, "completion_tokens": 3, "cost_usd": 0.25},
            )
        )
        events.append(
            event(
                "api_request",
                ms,
                user,
                key,
                api_key_id=key,
                model=model,
                provider="prov",
                usage={"prompt_tokens": 7, "cost_usd": 0.5},
            )
        )
        events.append(event("payg_consumption", ms, user, key, user_id=user, amount=1.5))
    return events


def users_inside(events: list[EdgeEvent], start_ms: int, end_ms: int) -> set[str]:
    """The users with a message in ``[start_ms, end_ms)``: those a users export lists."""
    return {
        event.user_id
        for event in events
        if event.payload["type"] == "message" and start_ms <= event.ms < end_ms
    }
