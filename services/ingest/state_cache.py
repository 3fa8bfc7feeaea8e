"""The ingest worker's working set: day and dimension states, loaded on demand, flushed
together, evicted least-recently-used once clean.

Memory is bounded by ``ingest_cache_max_entries``, by the weight (facts and versions
known) of cached states and by an estimate of the bytes they hold
(``ingest_cache_max_mb``): once over, clean states are evicted, least recently used
first, and the worker flushes early when dirty ones alone exceed a bound. An evicted
day costs little to reload: its head and the digests of its events, not its facts.

A day that does not exist yet costs no GET: the first time a workspace's days are
needed, one LIST says which exist, and days missing from it start empty. The listing
may be stale (another worker may create a day after it); that is safe, because a new
day is written with ``If-None-Match: *``: the write fails, the day is loaded and our
facts re-applied on top, deduplicated.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

from shared.adapters.s3 import ObjectStore
from shared.errors import PreconditionFailed
from shared.storage.days import DayState, load_day, stored_days, write_day
from shared.storage.dims import DimsState, load_dims, write_dims

log = logging.getLogger(__name__)

DayKey = tuple[str, date]
DimsKey = tuple[str, str]
S = TypeVar("S", DayState, DimsState)
T = TypeVar("T")

#: A fact segment superseded by compaction is deleted this long after, so that an
#: exporter that has just read the old head can still read it.
SUPERSEDED_GRACE_S = 60.0


@dataclass
class FlushReport:
    days: int = 0
    dims: int = 0
    facts: int = 0
    conflicts: int = 0
    seconds: float = 0.0


class StateCache:
    def __init__(
        self,
        store: ObjectStore,
        *,
        max_entries: int,
        max_weight: int,
        concurrency: int,
        max_bytes: int | None = None,
    ) -> None:
        self._store = store
        self._max_entries = max_entries
        self._max_weight = max_weight
        self._max_bytes = max_bytes if max_bytes is not None else 2**62
        self._gate = asyncio.Semaphore(concurrency)
        self.days: OrderedDict[DayKey, DayState] = OrderedDict()
        self.dims: OrderedDict[DimsKey, DimsState] = OrderedDict()
        self._superseded: list[tuple[float, str]] = []
        self._existing_days: dict[str, set[date]] = {}  # per workspace, from one LIST

    # ---- loading ----------------------------------------------------------------------
    async def _bounded(self, awaitable: Awaitable[T]) -> T:
        async with self._gate:
            return await awaitable

    async def ensure_days(self, wanted: Iterable[DayKey]) -> None:
        missing = [key for key in dict.fromkeys(wanted) if key not in self.days]
        unlisted = {org for org, _ in missing if org not in self._existing_days}
        listings = await asyncio.gather(
            *(self._bounded(stored_days(self._store, org)) for org in unlisted)
        )
        self._existing_days.update(zip(unlisted, listings, strict=True))
        stored = [key for key in missing if key[1] in self._existing_days[key[0]]]
        loaded = await asyncio.gather(
            *(self._bounded(load_day(self._store, org, day)) for org, day in stored)
        )
        for key, state in zip(stored, loaded, strict=True):
            self.days[key] = state
        for org, day in missing:
            if (org, day) not in self.days:
                self.days[(org, day)] = DayState(org_id=org, day=day)

    async def ensure_dims(self, wanted: Iterable[DimsKey]) -> None:
        missing = [key for key in dict.fromkeys(wanted) if key not in self.dims]
        loaded = await asyncio.gather(
            *(self._bounded(load_dims(self._store, org, kind)) for org, kind in missing)
        )
        for key, state in zip(missing, loaded, strict=True):
            self.dims[key] = state

    def day(self, key: DayKey) -> DayState:
        self.days.move_to_end(key)
        return self.days[key]

    def dims_state(self, key: DimsKey) -> DimsState:
        self.dims.move_to_end(key)
        return self.dims[key]

    # ---- flushing ---------------------------------------------------------------------
    @property
    def dirty(self) -> bool:
        return any(s.dirty for s in self.days.values()) or any(s.dirty for s in self.dims.values())

    @property
    def pending_facts(self) -> int:
        return sum(len(s.pending) for s in self.days.values())

    @property
    def weight(self) -> int:
        return sum(s.weight for s in self.days.values()) + sum(s.weight for s in self.dims.values())

    @property
    def nbytes(self) -> int:
        """Estimated bytes held by the cached states."""
        return sum(s.nbytes for s in self.days.values()) + sum(s.nbytes for s in self.dims.values())

    async def flush(self) -> FlushReport:
        """Make every dirty state durable; raises StoreUnavailable if the store is down
        (then nothing is lost: the states stay dirty and the caller retries)."""
        report = FlushReport()
        started = time.monotonic()
        dirty_days = [key for key, state in self.days.items() if state.dirty]
        dirty_dims = [key for key, state in self.dims.items() if state.dirty]
        report.facts = sum(len(self.days[key].pending) for key in dirty_days)
        results = await asyncio.gather(
            *(self._bounded_flush(self._flush_day(key)) for key in dirty_days),
            *(self._bounded_flush(self._flush_dims(key)) for key in dirty_dims),
            return_exceptions=True,
        )
        errors = [result for result in results if isinstance(result, BaseException)]
        report.conflicts = sum(result for result in results if isinstance(result, int))
        if errors:
            raise errors[0]
        report.days, report.dims = len(dirty_days), len(dirty_dims)
        report.seconds = time.monotonic() - started
        await self._delete_superseded()
        return report

    async def _bounded_flush(self, awaitable: Awaitable[int]) -> int:
        async with self._gate:
            return await awaitable

    async def _flush_day(self, key: DayKey) -> int:
        return await self._write_fenced(
            key,
            self.days,
            write=self._write_day,
            reload=lambda: load_day(self._store, key[0], key[1]),
        )

    async def _write_day(self, state: DayState) -> None:
        superseded = await write_day(self._store, state)
        self._existing_days.setdefault(state.org_id, set()).add(state.day)
        now = time.monotonic()
        self._superseded.extend((now, segment) for segment in superseded)

    async def _flush_dims(self, key: DimsKey) -> int:
        return await self._write_fenced(
            key,
            self.dims,
            write=lambda state: write_dims(self._store, state),
            reload=lambda: load_dims(self._store, key[0], key[1]),
        )

    async def _write_fenced(
        self,
        key: Any,
        table: OrderedDict[Any, S],
        *,
        write: Callable[[S], Awaitable[None]],
        reload: Callable[[], Awaitable[S]],
    ) -> int:
        """Write; on a lost race reload what the winner wrote and re-apply our pending
        changes on top (dedup drops what the winner already had). Returns conflicts."""
        conflicts = 0
        while True:
            state = table[key]
            try:
                await write(state)
                return conflicts
            except PreconditionFailed:
                conflicts += 1
                log.info("lost a write race on %s; reloading and re-applying", key)
                fresh = await reload()
                for change in state.pending_changes():
                    fresh.apply(change)
                table[key] = fresh
                if not fresh.dirty:
                    return conflicts

    async def _delete_superseded(self) -> None:
        cutoff = time.monotonic() - SUPERSEDED_GRACE_S
        due = [key for when, key in self._superseded if when <= cutoff]
        self._superseded = [(when, key) for when, key in self._superseded if when > cutoff]
        for key in due:
            try:
                await self._store.delete(key)
            except Exception:
                log.warning("could not delete superseded segment %s", key, exc_info=True)

    # ---- eviction ---------------------------------------------------------------------
    def evict(self) -> int:
        """Drop least-recently-used clean states while over the bounds; returns how many."""
        return self._evict()[0]

    def needs_early_flush(self) -> bool:
        """Over a bound with every clean state it could evict evicted: only a flush (which
        makes the dirty states clean) can help then. Clean states alone never force one:
        flushing would only rewrite the few dirty days, at the cost of a whole flush."""
        return self._evict()[1]

    def _evict(self) -> tuple[int, bool]:
        """(states evicted, whether still over a bound: then every state left is dirty)."""
        evicted = 0
        entries = len(self.days) + len(self.dims)
        # Kept up to date below: recomputing them per key would be quadratic.
        weight, nbytes = self.weight, self.nbytes
        tables: tuple[OrderedDict[Any, Any], ...] = (self.days, self.dims)
        for table in tables:
            if not self._over(entries, weight, nbytes):
                break  # the usual case, once per batch: no copy of the keys
            for key in list(table):
                if not self._over(entries, weight, nbytes):
                    break
                state = table[key]
                if not state.dirty:
                    del table[key]
                    entries -= 1
                    weight -= state.weight
                    nbytes -= state.nbytes
                    evicted += 1
        return evicted, self._over(entries, weight, nbytes)

    def _over(self, entries: int, weight: int, nbytes: int) -> bool:
        return entries > self._max_entries or weight > self._max_weight or nbytes > self._max_bytes

    def clear_clean(self) -> None:
        """Forget every clean state (after a rebalance another worker may write them)."""
        self._existing_days.clear()
        tables: tuple[OrderedDict[Any, Any], ...] = (self.days, self.dims)
        for table in tables:
            for key in [key for key, state in table.items() if not state.dirty]:
                del table[key]
