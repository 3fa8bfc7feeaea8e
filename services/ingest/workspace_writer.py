"""One workspace's pending rows on their way into its format-3 tables, deduplicated.

A :class:`WorkspaceWriter` holds what ingest has accepted for one workspace since its
last commit, and what it needs to accept nothing twice:

* **positions** — each table's recorded next offset per source partition
  (``shared.columnar.tables.Positions``): a record below it is already durable there and
  is skipped (a redelivery after a crash or a rebalance);
* **event ids** — an :class:`~shared.columnar.id_index.IdIndex` of every stored fact's
  id (the whole table, so the whole retention: the contract's dedup scope), the exact ids
  of the pending rows, and the stored ids of the dimension versions. A candidate the
  index names is confirmed against the stored ids of its days (cached, a few days), so a
  hash collision never drops an event. The first version applied wins.

:meth:`commit` appends the pending rows in one commit per table. When another writer
committed first (:class:`~shared.errors.FencedOut`: a zombie's or a new owner's commit,
or another partition's writer of this workspace), the writer reloads positions and ids
from the tables, drops what the winner holds, and commits the rest.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from shared.columnar.id_index import IdIndex
from shared.columnar.schema import FACTS, DimensionVersion, dimensions_table
from shared.columnar.tables import (
    DIMENSIONS_TABLE,
    FACTS_TABLE,
    Positions,
    TableStore,
    TopicPartition,
    WorkspaceTables,
    read_dimensions,
)
from shared.errors import FencedOut
from shared.lru import LruMap

log = logging.getLogger(__name__)

_EPOCH: Final = date(1970, 1, 1)
#: Days whose stored ids are kept after a confirmation (duplicates come in bursts).
_CONFIRMED_DAYS: Final = 8
#: Ids this writer stored recently are kept exactly, in two generations of at most this
#: many: a producer's retry or a redelivery is nearly always of a recent event, and is then
#: confirmed without reading the store.
_RECENT_IDS: Final = 50_000
#: The columns the index is built from.
_ID_COLUMNS: Final = ("event_id", "day")

Offsets = npt.NDArray[np.int64]


@dataclass(slots=True)
class _Facts:
    """Pending facts of one source partition, with each row's offset."""

    source: TopicPartition
    offsets: Offsets
    rows: pa.Table


@dataclass(frozen=True, slots=True)
class Applied:
    """What one batch contributed to a workspace: new rows, and records dropped as
    duplicates (already durable by position, or an ``event_id`` seen before)."""

    applied: int
    duplicates: int


def _index_of(batches: Iterable[pa.RecordBatch]) -> IdIndex:
    """The index of every stored id, read in batches (memory: one batch of ids)."""
    index = IdIndex()
    for batch in batches:
        days = pc.cast(batch.column(1), pa.int32()).to_numpy(zero_copy_only=False)
        index.add(batch.column(0).to_pylist(), days)
    return index


def _index_more(index: IdIndex, batches: Iterable[pa.RecordBatch]) -> None:
    """Add the ids of ``batches`` (files new since the index was built) that the index
    does not hold under their day yet: another writer's new ids are added; the ids of a
    file the compactor rewrote (the same ids, under the same days) are not added twice."""
    for batch in batches:
        ids = batch.column(0).to_pylist()
        days = pc.cast(batch.column(1), pa.int32()).to_numpy(zero_copy_only=False)
        known = index.candidates(ids)
        new = [at for at, day in enumerate(days.tolist()) if day not in known.get(at, ())]
        index.add([ids[at] for at in new], days[new])


class WorkspaceWriter:
    """Use :meth:`open`; then :meth:`add_facts`/:meth:`add_dimensions` and
    :meth:`commit`. One writer per workspace per process."""

    def __init__(self, tables: WorkspaceTables) -> None:
        self._tables = tables
        self.org_id = tables.org_id
        self._positions = Positions(facts={}, dimensions={})
        self._index = IdIndex()
        self._dimension_ids: set[str] = set()
        self._facts: list[_Facts] = []
        self._pending_ids: set[str] = set()
        self._dimensions: list[tuple[TopicPartition, int, DimensionVersion]] = []
        self._confirmed: LruMap[int, set[str]] = LruMap(_CONFIRMED_DAYS)
        self._recent: set[str] = set()
        self._older: set[str] = set()
        self.sources: set[TopicPartition] = set()
        self._files: frozenset[str] = frozenset()  # the facts files the index holds

    @classmethod
    async def open(
        cls, store: TableStore, org_id: str, sources: Iterable[TopicPartition]
    ) -> WorkspaceWriter:
        writer = cls(await WorkspaceTables.open(store, org_id))
        writer.sources.update(sources)
        await writer._load()
        return writer

    async def _load(self) -> None:
        """Positions and ids as of the tables' latest commit."""
        await self._tables.refresh()
        self._positions = self._tables.positions(self.sources)
        self._files = self._tables.facts_files()
        self._index = await asyncio.to_thread(_index_of, self._tables.facts_batches(_ID_COLUMNS))
        self._confirmed.clear()
        self._recent.clear()
        self._older.clear()
        dimensions = await read_dimensions(self._tables.store, self.org_id)
        self._dimension_ids = set(dimensions.column("event_id").to_pylist())

    # ---- accepting ----------------------------------------------------------------------
    @property
    def pending(self) -> int:
        return int(sum(chunk.rows.num_rows for chunk in self._facts)) + len(self._dimensions)

    @property
    def nbytes(self) -> int:
        """Memory held: the index, the pending rows and their ids (estimated)."""
        rows = int(sum(chunk.rows.nbytes + chunk.offsets.nbytes for chunk in self._facts))
        held = (self._pending_ids, self._dimension_ids, self._recent, self._older)
        ids = 100 * sum(len(found) for found in held)
        return self._index.nbytes + rows + ids + 400 * len(self._dimensions)

    def watch(self, source: TopicPartition) -> None:
        """Read ``source``'s recorded positions too (a partition this worker now reads)."""
        if source not in self.sources:
            self.sources.add(source)
            self._positions = self._tables.positions(self.sources)

    async def add_facts(self, source: TopicPartition, offsets: Offsets, rows: pa.Table) -> Applied:
        """Accept the rows (records at ``offsets`` of ``source``) that are new."""
        self.watch(source)
        offered = len(offsets)
        recorded = self._positions.facts.get(source)
        if recorded is not None:
            later = offsets >= recorded
            if not later.all():
                offsets, rows = offsets[later], rows.filter(pa.array(later))
        keep = await self._new_ids(rows.column("event_id").to_pylist())
        if len(keep) < rows.num_rows:
            positions = pa.array(keep, pa.int64())
            rows, offsets = rows.take(positions), offsets[np.asarray(keep, dtype=np.int64)]
        if rows.num_rows:
            self._facts.append(_Facts(source, offsets, rows))
        return Applied(rows.num_rows, offered - rows.num_rows)

    async def _new_ids(self, ids: Sequence[str]) -> list[int]:
        """Positions of the ids seen neither pending, nor stored, nor earlier in ``ids``;
        the kept ones become pending."""
        pending = self._pending_ids
        first: list[int] = []
        for position, event_id in enumerate(ids):
            if event_id not in pending:
                pending.add(event_id)
                first.append(position)
        candidates = self._index.candidates([ids[position] for position in first])
        if not candidates:
            return first
        stored: set[int] = set()
        recent, older = self._recent, self._older
        unconfirmed: list[tuple[int, set[int]]] = []
        for where, candidate_days in candidates.items():
            event_id = ids[first[where]]
            if event_id in recent or event_id in older:
                stored.add(where)
                pending.discard(event_id)
            else:
                unconfirmed.append((where, candidate_days))
        if unconfirmed:
            by_day = await self._stored_ids({day for _, days in unconfirmed for day in days})
            for where, candidate_days in unconfirmed:
                event_id = ids[first[where]]
                if any(event_id in by_day[day] for day in candidate_days):
                    stored.add(where)
                    pending.discard(event_id)
        return [position for where, position in enumerate(first) if where not in stored]

    async def _stored_ids(self, day_numbers: set[int]) -> dict[int, set[str]]:
        """The stored ids of each of these UTC days: the cached ones, and the others read
        in one pass (a batch's candidates of a backfill span many days)."""
        found = {day: ids for day in day_numbers if (ids := self._confirmed.get(day)) is not None}
        for day in found:
            self._confirmed.touch(day)
        missing = day_numbers - found.keys()
        if missing:
            read = await self._tables.facts_on(
                [_EPOCH + timedelta(days=day) for day in missing], ["event_id"]
            )
            for day in missing:
                found[day] = set()
            days = pc.cast(read.column("day"), pa.int32()).to_pylist()
            for day, event_id in zip(days, read.column("event_id").to_pylist(), strict=True):
                found[day].add(event_id)
            for day in sorted(missing):
                self._confirmed.put(day, found[day])
        return found

    def add_dimensions(
        self, source: TopicPartition, versions: Sequence[tuple[int, DimensionVersion]]
    ) -> Applied:
        """Accept the dimension versions (records at the given offsets) that are new."""
        self.watch(source)
        recorded = self._positions.dimensions.get(source)
        applied = 0
        for offset, version in versions:
            event_id = version[3]
            if recorded is not None and offset < recorded:
                continue
            if event_id in self._dimension_ids:
                continue
            self._dimension_ids.add(event_id)
            self._dimensions.append((source, offset, version))
            applied += 1
        return Applied(applied, len(versions) - applied)

    # ---- committing ---------------------------------------------------------------------
    async def commit(self, positions: Mapping[TopicPartition, int]) -> int:
        """Make the pending rows durable, recording ``positions`` (next offset per source
        partition read) for the sources they came from; returns the conflicts met."""
        conflicts = 0
        while self.pending:
            sources = {chunk.source for chunk in self._facts}
            sources |= {source for source, _, _ in self._dimensions}
            facts = (
                pa.concat_tables([chunk.rows for chunk in self._facts])
                if self._facts
                else FACTS.empty_table()
            )
            versions = [version for _, _, version in self._dimensions]
            try:
                appended = await self._tables.append(
                    facts,
                    dimensions_table(self.org_id, versions),
                    {source: positions[source] for source in sources},
                )
            except FencedOut as exc:
                conflicts += 1
                log.info("%s; reloading %s and committing the rest", exc, self.org_id)
                await self._rebase()
                continue
            self._committed(facts)
            if appended.others_after:
                # The snapshot moved past another writer's commit: index its ids now.
                self._files |= appended.facts_files
                await self._catch_up()
            else:
                # Every commit since the snapshot would have refused this one but the
                # compactor's span rewrites, which add no id: the index holds every file.
                self._files = self._tables.facts_files()
        return conflicts

    def _committed(self, facts: pa.Table) -> None:
        if facts.num_rows:
            days = pc.cast(facts.column("day"), pa.int32()).to_numpy()
            ids = facts.column("event_id").to_pylist()
            self._index.add(ids, days)
            if len(self._recent) + len(ids) > _RECENT_IDS:
                self._older, self._recent = self._recent, set()
            self._recent.update(ids)
            # The cached stored ids of a day must include what was just stored there, or a
            # later duplicate of it would pass for a hash collision and count twice.
            for event_id, day in zip(ids, days.tolist(), strict=True):
                cached = self._confirmed.get(day)
                if cached is not None:
                    cached.add(event_id)
        self._positions = self._tables.positions(self.sources)
        self._facts, self._dimensions = [], []
        self._pending_ids.clear()

    async def _rebase(self) -> None:
        """After losing a commit race: reload, and keep only the pending rows the tables
        do not hold (by position, then by id)."""
        facts, dimensions = self._facts, self._dimensions
        self._facts, self._dimensions = [], []
        self._pending_ids.clear()
        await self._catch_up()
        for chunk in facts:
            await self.add_facts(chunk.source, chunk.offsets, chunk.rows)
        by_source: dict[TopicPartition, list[tuple[int, DimensionVersion]]] = {}
        for source, offset, version in dimensions:
            by_source.setdefault(source, []).append((offset, version))
        for source, versions in by_source.items():
            self.add_dimensions(source, versions)

    async def _catch_up(self) -> None:
        """Move to the tables' latest commit, adding to the index only the ids of the facts
        files that are new since (not a rebuild: a compactor's rewrite fences a writer too)."""
        await self._tables.refresh()
        self._positions = self._tables.positions(self.sources)
        files = self._tables.facts_files()
        new = files - self._files
        if new:
            ids = self._tables.facts_batches(_ID_COLUMNS, new)
            await asyncio.to_thread(_index_more, self._index, ids)
        self._files = files
        # Days cached before may have gained ids; this writer's own recent ids still hold.
        self._confirmed.clear()
        dimensions = await read_dimensions(self._tables.store, self.org_id)
        self._dimension_ids = set(dimensions.column("event_id").to_pylist())

    def recorded(self, table: str, source: TopicPartition) -> int | None:
        """The snapshot's recorded next offset of ``source`` in ``table`` (tests, status)."""
        found = self._positions.facts if table == FACTS_TABLE else self._positions.dimensions
        assert table in (FACTS_TABLE, DIMENSIONS_TABLE)
        return found.get(source)
