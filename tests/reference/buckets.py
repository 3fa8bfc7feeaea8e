"""Contract §3 ``bucket``: a window cut into local days, ISO weeks or months of the
``from`` timezone, and which rows of a bucket had activity (the only ones it keeps)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal

from tests.reference.log import OrgLog
from tests.reference.window import (
    RequestRejected,
    Window,
    first_instant_of,
    floor15,
    zone,
)

MAX_BUCKETS = 400
_MS = timedelta(milliseconds=1)
#: The column naming each type's entity; models have rows from activity only (None).
ENTITY_COLUMN = {
    "users": "user_id",
    "assistants": "assistant_id",
    "api_keys": "api_key_id",
    "projects": "project_id",
    "models": None,
}
#: The columns that tell one row's entity from another's.
IDENTITY = {**{kind: (column,) for kind, column in ENTITY_COLUMN.items() if column},
            "models": ("name", "provider", "bring_your_keys")}  # fmt: skip
#: Money columns that add up over time; the first is one figure per entity (each of a
#: user's subgroup rows repeats it), the second one per row.
CARRIED_MONEY = ("payg_consumption_in_period", "total_cost_usd")
_MICRO = Decimal("0.000001")


def _money_keys(kind: str, group_by: str | None, row: dict[str, str]) -> dict[str, tuple[str, ...]]:
    ids = tuple(row[column] for column in IDENTITY[kind])
    subgroup = (row.get(group_by, ""),) if group_by else ()
    return {"payg_consumption_in_period": ids, "total_cost_usd": (*ids, *subgroup)}


def carry_money(
    kind: str,
    group_by: str | None,
    rows: list[dict[str, str]],
    through: list[dict[str, str]],
    before: list[dict[str, str]],
) -> None:
    """Contract §5, "Buckets": a bucket row's money cell is its figure over the window up
    to the bucket's end (its cell in ``through``, the export of that prefix of the
    window) less its figure up to the previous bucket's end (``before``); in place."""

    def cells(export: list[dict[str, str]]) -> dict[tuple[str, tuple[str, ...]], str]:
        return {
            (column, key): row[column]
            for row in export
            for column, key in _money_keys(kind, group_by, row).items()
            if column in row
        }

    total, earlier = cells(through), cells(before)
    for row in rows:
        for column, key in _money_keys(kind, group_by, row).items():
            if column in row:
                now, then = total.get((column, key), "0"), earlier.get((column, key), "0")
                amount = Decimal(now) - Decimal(then)
                row[column] = str(amount.quantize(_MICRO))


def _next_first_day(day: date, unit: str) -> date:
    """The first local date of the bucket after ``day``'s: counted a day at a time."""
    following = day + timedelta(days=1)
    if unit == "day":
        return following
    if unit == "week":
        while following.isoweekday() != 1:  # Monday
            following += timedelta(days=1)
        return following
    while following.day != 1:
        following += timedelta(days=1)
    return following


def bucket_windows(window: Window, from_tz: str, unit: str) -> list[tuple[str, str, Window]]:
    """(bucket_start, bucket_end, the bucket as a window read as of the window's end)."""
    if unit not in ("day", "week", "month"):
        raise RequestRejected(400, f"unknown bucket {unit!r}")
    tz = zone(from_tz)
    found: list[tuple[str, str, Window]] = []
    start = window.start
    day = start.astimezone(tz).date()
    while start < window.end:
        day = _next_first_day(day, unit)
        end = min(floor15(first_instant_of(day, tz)), window.end)
        first, last = start.astimezone(tz).date(), (end - _MS).astimezone(tz).date()
        part = replace(window, start=start, end=end, attributes_at=window.end)
        found.append((first.isoformat(), last.isoformat(), part))
        start = end
    if len(found) > MAX_BUCKETS:
        raise RequestRejected(400, f"more than {MAX_BUCKETS} buckets")
    return found


def active_entities(org: OrgLog, kind: str, window: Window) -> set[str] | None:
    """The entities with an event of their type in ``window`` (None: every row is)."""

    def inside(at: datetime) -> bool:
        return window.start <= at < window.end

    messages = [m for m in org.messages if inside(m.at)]
    if kind == "users":
        return {m.owner for m in messages} | {p.user_id for p in org.payg if inside(p.at)}
    if kind == "assistants":
        return {m.assistant_id for m in messages if m.assistant_id is not None}
    if kind == "api_keys":
        return {call.owner for call in org.api_requests if inside(call.at)}
    if kind == "projects":
        return {m.project_id for m in messages if m.project_id is not None}
    return None
