"""One aggregate part (``shared.domain.aggregate_parts``) of one workspace over one export
window, reading only what the window needs (``shared.domain.window_plan``):

* months the window covers whole, from their month rollups (``shared.storage.rollups``)
  when fresh; a missing or stale rollup is rebuilt from the month's day heads — every
  part, since the heads are decoded whole anyway — and written back for the next export;
* the other whole UTC days, from their day heads, decoding only the part asked for;
* at most two partial days, from their facts, filtered to the window's instants.

The month's day keys are listed first (one LIST per month touched), which both finds the
days with data — a sparse workspace costs no GETs for empty days — and gives the head
ETags a rollup's manifest must match. Everything is merged as it arrives, so at most a
bounded number of documents is held decoded at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from shared.adapters.s3 import ObjectStore, StoredObject
from shared.clock import Clock, system_clock
from shared.domain import keys
from shared.domain.aggregate import Aggregate
from shared.domain.aggregate_absorb import absorb
from shared.domain.aggregate_parts import only_part, part_of
from shared.domain.facts import TS
from shared.domain.window import Window
from shared.domain.window_plan import months_touched, plan_window
from shared.gc_pause import collector_paused
from shared.storage.days import parse_head, read_day_facts
from shared.storage.rollups import (
    HeadVersions,
    encode_rollups,
    list_month_heads,
    put_rollups,
    read_month_heads,
    rollup_aggregate,
)

log = logging.getLogger(__name__)

#: How long an export waits, once its window is read, for the month rollups it built
#: to be stored.
ROLLUP_WRITE_WAIT_S = 5.0


@dataclass(slots=True)
class WindowRead:
    """The window's aggregate part and what it was read from."""

    aggregate: Aggregate = field(default_factory=Aggregate)
    rollup_months: int = 0  # months read from a fresh rollup
    built_months: int = 0  # months whose rollup was missing or stale: read from day heads
    full_days: int = 0  # day heads read (those of rebuilt months included)
    partial_days: int = 0  # days read from their facts

    def describe(self) -> str:
        return (
            f"{self.rollup_months} months from rollups, {self.built_months} rebuilt, "
            f"{self.full_days} day heads, {self.partial_days} partial days"
        )


@dataclass(frozen=True, slots=True)
class _Part:
    """A decoded piece of the window, ready to merge."""

    aggregate: Aggregate
    rollup_months: int = 0
    built_months: int = 0
    full_days: int = 0
    partial_days: int = 0


@dataclass(frozen=True, slots=True)
class _StoredRollup:
    """A month's rollup as fetched (None: there is none), not decoded yet."""

    month: date
    heads: HeadVersions
    stored: StoredObject | None


@dataclass(frozen=True, slots=True)
class _StoredHead:
    day: date
    stored: StoredObject | None


_Fetched = _Part | _StoredRollup | _StoredHead


class _WindowReader:
    """Fetches concurrently, decodes one document at a time.

    Tasks only fetch bytes (or rebuild a month, or fold a partial day's facts); the
    documents are decoded and merged in :meth:`read`'s loop as they arrive, each before
    the next, so memory holds the window's part plus one decoded document — not every
    document that happened to arrive at once."""

    def __init__(
        self,
        store: ObjectStore,
        org_id: str,
        window: Window,
        part: str,
        *,
        concurrency: int,
        build_concurrency: int,
        clock: Clock,
    ) -> None:
        self._clock = clock
        self._store = store
        self._org_id = org_id
        self._window = window
        self._part = part
        self._limit = asyncio.Semaphore(concurrency)
        # A month being rebuilt holds every part of it: bound how many at once.
        self._build_limit = asyncio.Semaphore(build_concurrency)
        self.writes: list[asyncio.Future[int]] = []

    async def list_heads(self) -> dict[date, HeadVersions]:
        months = months_touched(self._window)

        async def listed(month: date) -> HeadVersions:
            async with self._limit:
                return await list_month_heads(self._store, self._org_id, month)

        found = await asyncio.gather(*(listed(month) for month in months))
        return dict(zip(months, found, strict=True))

    async def fetch_rollup(self, month: date, heads: HeadVersions) -> _StoredRollup:
        key = keys.month_rollup_key(self._org_id, month, self._part)
        async with self._limit:
            return _StoredRollup(month, heads, await self._store.get(key))

    async def build_month(self, month: date, heads: HeadVersions) -> _Part:
        # Paused across the awaits too: the parts of the month this export does not read
        # are encoded and die before the collector would ever traverse them.
        with collector_paused():
            async with self._build_limit:
                whole, read = await read_month_heads(
                    self._store, self._org_id, sorted(heads), self._limit
                )
            documents = encode_rollups(self._org_id, month, read, whole, clock=self._clock)
            needed = only_part(whole, self._part)
            del whole
        # Stored while the window reading goes on; read_window waits for them at its end.
        self.writes.append(
            asyncio.ensure_future(put_rollups(self._store, self._org_id, month, documents))
        )
        return _Part(needed, built_months=1, full_days=len(read))

    async def fetch_head(self, day: date) -> _StoredHead:
        async with self._limit:
            return _StoredHead(day, await self._store.get(keys.day_head_key(self._org_id, day)))

    async def fact_day(self, day: date) -> _Part:
        async with self._limit:
            facts = await read_day_facts(self._store, self._org_id, day)
        folded = Aggregate()
        contains = self._window.contains
        with collector_paused():
            for fact in facts or ():
                if contains(fact[TS]):
                    folded.add(fact)
        return _Part(only_part(folded, self._part), partial_days=1)

    def decoded(self, fetched: _Fetched) -> _Part | Awaitable[_Part] | None:
        """The piece to merge; a rebuild to wait for when a rollup is missing or stale;
        None for a head that expired since it was listed."""
        if isinstance(fetched, _Part):
            return fetched
        if isinstance(fetched, _StoredHead):
            if fetched.stored is None:
                return None
            with collector_paused():
                head, _ = parse_head(fetched.stored.body)
                return _Part(part_of(head["aggregate"], self._part), full_days=1)
        if fetched.stored is not None:
            aggregate = rollup_aggregate(
                fetched.stored.body,
                org_id=self._org_id,
                month=fetched.month,
                part=self._part,
                heads=fetched.heads,
            )
            if aggregate is not None:
                return _Part(aggregate, rollup_months=1)
        return self.build_month(fetched.month, fetched.heads)


async def read_window(
    store: ObjectStore,
    org_id: str,
    window: Window,
    part: str,
    *,
    use_rollups: bool = True,
    concurrency: int = 16,
    build_concurrency: int = 1,
    clock: Clock = system_clock,
) -> WindowRead:
    reader = _WindowReader(
        store,
        org_id,
        window,
        part,
        concurrency=concurrency,
        build_concurrency=build_concurrency,
        clock=clock,
    )
    heads_by_month = await reader.list_heads()
    existing = {day for heads in heads_by_month.values() for day in heads}
    plan = plan_window(window, existing, use_rollups=use_rollups)
    work: list[Awaitable[_Fetched]] = [
        reader.fetch_rollup(month, heads_by_month[month]) for month in plan.rollup_months
    ]
    work += [reader.fetch_head(day) for day in plan.head_days]
    work += [reader.fact_day(day) for day in plan.fact_days]
    pending: set[asyncio.Future[_Fetched]] = {asyncio.ensure_future(item) for item in work}
    result = WindowRead()
    merged: Aggregate | None = None
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                found = reader.decoded(task.result())
                if found is None:
                    continue
                if not isinstance(found, _Part):
                    pending.add(asyncio.ensure_future(found))
                    continue
                # Every piece is a fresh object nothing else holds: the first is adopted,
                # the others absorbed (their entries taken over rather than copied).
                if merged is None:
                    merged = found.aggregate
                else:
                    with collector_paused():
                        absorb(merged, found.aggregate)
                result.rollup_months += found.rollup_months
                result.built_months += found.built_months
                result.full_days += found.full_days
                result.partial_days += found.partial_days
        # Rollup writes are a cache: wait a little for them, never past a slow store (the
        # ones still unfinished are cancelled below; the next export builds them again).
        if reader.writes:
            await asyncio.wait(reader.writes, timeout=ROLLUP_WRITE_WAIT_S)
    finally:
        unfinished: list[asyncio.Future[Any]] = [*pending, *reader.writes]
        for future in unfinished:
            future.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
    if merged is not None:
        result.aggregate = merged
    return result
