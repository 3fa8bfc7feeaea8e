"""Scheduled exports (contract §3a): the periods of a schedule, which are due, and the
ordinary export request of each.

A schedule exports every calendar day, ISO week (Monday to Sunday) or calendar month of
its timezone. A period starts where its first local day starts
(``shared.domain.window.local_day_start_ms``: local midnight, or the DST change where one
skips midnight) and ends where the next one starts, so periods tile time exactly in every
zone, DST days included. A period is *due* once ``end + grace <= now`` (grace lets ingest
catch up with the period's last events). The first period is the first one that starts at
or after the schedule's creation: a schedule created mid-month exports from the next month
on. A period whose end falls while the schedule is paused is skipped (as a suspended
Kubernetes CronJob skips its runs); ``usage-export request`` exports it by hand.

Each period's request id is derived (uuid5) from the schedule id and the period's first
day, so that publishing a period again, after a crash or by a second scheduler, is the
same request: the exporter's request ledger answers it once and writes one file.

Pure: no clock (``now`` is an argument), no I/O.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from shared import codec
from shared.contracts.export_buckets import BucketUnit
from shared.domain.buckets import next_start
from shared.domain.export.request_validation import (
    Rejected,
    Unreadable,
    read_request,
    validate_request,
)
from shared.domain.timezones import is_accepted_zone
from shared.domain.window import from_ms, local_day_start_ms

#: Namespace of the derived request ids (uuid5 of ``{schedule_id}/{first day}``).
SCHEDULE_NAMESPACE: Final = uuid.UUID("6f1d0c1e-4f0e-5b8a-9d6c-2a7e3b9c1d40")
#: At most this many periods are published per schedule per round (catch-up is paced).
MAX_DUE_PER_ROUND: Final = 400

ACTIVE: Final = "active"
PAUSED: Final = "paused"


@dataclass(frozen=True, slots=True)
class Period:
    """``start_ms <= t < end_ms``: the local days ``first_day`` to ``last_day``."""

    first_day: date
    last_day: date
    start_ms: int
    end_ms: int

    @property
    def name(self) -> str:
        """``2026-11-01_2026-11-30``: the destination path's period segment."""
        return f"{self.first_day.isoformat()}_{self.last_day.isoformat()}"


def period_first_day(day: date, every: BucketUnit) -> date:
    """The first local date of the period holding ``day``."""
    if every is BucketUnit.DAY:
        return day
    if every is BucketUnit.WEEK:
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def period_of(day: date, every: BucketUnit, zone: ZoneInfo) -> Period:
    """The period holding the local date ``day``."""
    first = period_first_day(day, every)
    after = next_start(first, every)
    return Period(
        first_day=first,
        last_day=after - timedelta(days=1),
        start_ms=local_day_start_ms(first, zone),
        end_ms=local_day_start_ms(after, zone),
    )


def next_period(period: Period, every: BucketUnit, zone: ZoneInfo) -> Period:
    return period_of(period.last_day + timedelta(days=1), every, zone)


def first_period(created_ms: int, every: BucketUnit, zone: ZoneInfo) -> Period:
    """The first period that starts at or after ``created_ms``."""
    holding = period_of(from_ms(created_ms, zone).date(), every, zone)
    if holding.start_ms >= created_ms:
        return holding
    return next_period(holding, every, zone)


def period_request_id(schedule_id: str, period: Period) -> str:
    """The export request id of a schedule's period: the same for every publication."""
    return str(uuid.uuid5(SCHEDULE_NAMESPACE, f"{schedule_id}/{period.first_day.isoformat()}"))


@dataclass(frozen=True, slots=True)
class Schedule:
    """A stored schedule (``schedules/{org_id}/{schedule_id}.json``)."""

    schedule_id: str
    org_id: str
    data_type: str
    every: BucketUnit
    timezone: str
    created_ms: int
    group_by: str | None = None
    bucket: str | None = None
    format: str | None = None
    destination: str | None = None
    #: Where each period's completion is POSTed, signed (contract §4a), or None.
    callback_url: str | None = None
    state: str = ACTIVE
    paused_ms: int | None = None
    #: ``(paused_ms, resumed_ms)`` of each pause: periods ending inside one are skipped.
    pauses: tuple[tuple[int, int], ...] = ()
    #: The last day of the newest period published (None: none yet).
    published_through: date | None = None
    etag: str = field(default="", compare=False)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def active(self) -> bool:
        return self.state == ACTIVE

    def skipped(self, period: Period) -> bool:
        """Whether ``period`` ended while the schedule was paused."""
        return any(start < period.end_ms <= end for start, end in self.pauses)

    def to_json(self) -> dict[str, Any]:
        return {
            "schedule_id": self.schedule_id,
            "org_id": self.org_id,
            "data_type": self.data_type,
            "every": self.every.value,
            "timezone": self.timezone,
            "created_ms": self.created_ms,
            "group_by": self.group_by,
            "bucket": self.bucket,
            "format": self.format,
            "destination": self.destination,
            "callback_url": self.callback_url,
            "state": self.state,
            "paused_ms": self.paused_ms,
            "pauses": [list(pause) for pause in self.pauses],
            "published_through": (
                None if self.published_through is None else self.published_through.isoformat()
            ),
        }

    @classmethod
    def from_json(cls, data: Any, etag: str = "") -> Schedule:
        """Raises ValueError, KeyError or TypeError for a record that is not one (not an
        object, a field of the wrong type, a timezone that is not an IANA name), so that
        a stored schedule that loads can be shown and scheduled."""
        if not isinstance(data, dict):
            raise TypeError(f"a schedule record is a JSON object, not {type(data).__name__}")
        through = data.get("published_through")
        state = str(data.get("state") or ACTIVE)
        if state not in (ACTIVE, PAUSED):
            raise ValueError(f"unknown schedule state {state!r}")
        return cls(
            schedule_id=_text(data, "schedule_id"),
            org_id=_text(data, "org_id"),
            data_type=_text(data, "data_type"),
            every=BucketUnit(data["every"]),
            timezone=_zone_name(data),
            created_ms=int(data["created_ms"]),
            group_by=_optional_text(data, "group_by"),
            bucket=_optional_text(data, "bucket"),
            format=_optional_text(data, "format"),
            destination=_optional_text(data, "destination"),
            callback_url=_optional_text(data, "callback_url"),
            state=state,
            paused_ms=None if data.get("paused_ms") is None else int(data["paused_ms"]),
            pauses=tuple((int(a), int(b)) for a, b in data.get("pauses") or ()),
            published_through=None if through is None else date.fromisoformat(through),
            etag=etag,
        )


def _text(data: dict[str, Any], name: str) -> str:
    value = data[name]
    if not isinstance(value, str):
        raise TypeError(f"schedule field {name} must be a string")
    return value


def _optional_text(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    return None if value is None else _text(data, name)


def _zone_name(data: dict[str, Any]) -> str:
    name = _text(data, "timezone")
    if not is_accepted_zone(name):
        raise ValueError(f"schedule timezone {name!r} is not an IANA timezone name")
    return name


def due_periods(
    schedule: Schedule, now_ms: int, *, grace_ms: int, limit: int = MAX_DUE_PER_ROUND
) -> list[Period]:
    """The periods after ``published_through`` that are due at ``now_ms``, oldest first
    (skipped ones included: publishing moves past them). None while paused."""
    if not schedule.active:
        return []
    zone, every = schedule.zone, schedule.every
    if schedule.published_through is None:
        period = first_period(schedule.created_ms, every, zone)
    else:
        period = period_of(schedule.published_through + timedelta(days=1), every, zone)
    due: list[Period] = []
    while period.end_ms + grace_ms <= now_ms and len(due) < limit:
        due.append(period)
        period = next_period(period, every, zone)
    return due


def pause(schedule: Schedule, now_ms: int) -> Schedule:
    if not schedule.active:
        return schedule
    return replace(schedule, state=PAUSED, paused_ms=now_ms)


def resume(schedule: Schedule, now_ms: int) -> Schedule:
    if schedule.active:
        return schedule
    paused = schedule.paused_ms if schedule.paused_ms is not None else now_ms
    return replace(
        schedule, state=ACTIVE, paused_ms=None, pauses=(*schedule.pauses, (paused, now_ms))
    )


def period_request(schedule: Schedule, period: Period) -> dict[str, Any]:
    """The ordinary export request (contract §3) of one period of ``schedule``."""
    message: dict[str, Any] = {
        "request_id": period_request_id(schedule.schedule_id, period),
        "org_id": schedule.org_id,
        "data_type": schedule.data_type,
        "from": {"date": period.first_day.isoformat(), "timezone": schedule.timezone},
        "to": {"date": period.last_day.isoformat(), "timezone": schedule.timezone},
        "group_by": schedule.group_by,
        "requested_by": f"schedule:{schedule.schedule_id}",
    }
    for name in ("format", "bucket", "destination", "callback_url"):
        value = getattr(schedule, name)
        if value is not None:
            message[name] = value
    return message


def schedule_problem(schedule: Schedule, now_ms: int) -> str | None:
    """Why ``schedule`` could not be exported, or None: its timezone, type, ``group_by``,
    ``format``, ``bucket``, ``destination`` and ``callback_url`` are judged as the exporter
    judges the request of the period in progress (the same validation, not a copy of it)."""
    if not is_accepted_zone(schedule.timezone):
        return (
            f"timezone {schedule.timezone!r} is not an IANA timezone name "
            "(e.g. Europe/Berlin, Asia/Kolkata, UTC)"
        )
    current = period_of(from_ms(now_ms, schedule.zone).date(), schedule.every, schedule.zone)
    message = period_request(schedule, current)
    readable = read_request(codec.dumps(message), max_bytes=1 << 20)
    if isinstance(readable, Unreadable):
        return readable.header
    checked = validate_request(readable, now=from_ms(now_ms, ZoneInfo("UTC")))
    return checked.message if isinstance(checked, Rejected) else None
