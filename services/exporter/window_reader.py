"""The merged aggregate of one workspace over one export window, reading only what the
window needs: the heads of the UTC days it covers whole (their ``aggregate``, fetched
concurrently with a bound), and the facts of at most two partial days at its ends,
filtered to the window's instants and folded.

Days are listed first (one LIST of the workspace's day prefixes), so a sparse workspace
costs no GETs for days without data.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date

from shared.adapters.s3 import ObjectStore
from shared.domain import keys
from shared.domain.aggregate import Aggregate
from shared.domain.facts import TS
from shared.domain.window import Window
from shared.storage.days import parse_head, read_day_facts


@dataclass(frozen=True, slots=True)
class WindowRead:
    aggregate: Aggregate
    full_days: int
    partial_days: int


def plan_days(window: Window, existing: set[date]) -> tuple[list[date], list[date]]:
    """(days read from their head aggregate, days read from their facts)."""
    full: list[date] = []
    partial: list[date] = []
    for day in window.utc_days():
        if day in existing:
            (full if window.covers_whole_day(day) else partial).append(day)
    return full, partial


async def existing_days(store: ObjectStore, org_id: str) -> set[date]:
    days = set()
    for prefix in await store.list_prefixes(keys.days_prefix(org_id)):
        day = keys.parse_day_prefix(prefix)
        if day is not None:
            days.add(day)
    return days


async def read_window(
    store: ObjectStore, org_id: str, window: Window, *, concurrency: int = 16
) -> WindowRead:
    full, partial = plan_days(window, await existing_days(store, org_id))
    merged = Aggregate()
    limit = asyncio.Semaphore(concurrency)

    async def head_aggregate(day: date) -> Aggregate | None:
        async with limit:
            head = await store.get(keys.day_head_key(org_id, day))
        if head is None:
            return None
        return Aggregate.from_json(parse_head(head.body)[0]["aggregate"])

    async def window_facts(day: date) -> Aggregate:
        async with limit:
            facts = await read_day_facts(store, org_id, day)
        part = Aggregate()
        for fact in facts or ():
            if window.contains(fact[TS]):
                part.add(fact)
        return part

    tasks = [asyncio.ensure_future(head_aggregate(day)) for day in full]
    tasks += [asyncio.ensure_future(window_facts(day)) for day in partial]
    try:
        # Merge each day as it arrives rather than holding every day until the end.
        for next_done in asyncio.as_completed(tasks):
            part = await next_done
            if part is not None:
                merged.merge(part)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return WindowRead(aggregate=merged, full_days=len(full), partial_days=len(partial))
