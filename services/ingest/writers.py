"""The workspaces an ingest process writes: one :class:`WorkspaceWriter` each, opened on
first use, committed together, evicted least-recently-used once committed.

Memory is bounded by ``ingest_cache_max_mb``: a writer holds its workspace's id index
(12 bytes an event of the retention period) and its pending rows. Past the bound, writers
with nothing pending are dropped, least recently used first (reopening one reads its ids
again); when the pending rows alone are over it, the worker commits early.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from services.ingest.workspace_writer import WorkspaceWriter
from shared.columnar.tables import TableStore, TopicPartition

T = TypeVar("T")


# Counters of one flush: the compactor's Sweep and replay's summary look alike, count other passes.
@dataclass
class FlushReport:
    workspaces: int = 0
    rows: int = 0
    conflicts: int = 0
    seconds: float = 0.0


class Writers:
    def __init__(self, store: TableStore, *, max_bytes: int, concurrency: int) -> None:
        self._store = store
        self._max_bytes = max_bytes
        self._gate = asyncio.Semaphore(concurrency)
        self.open: OrderedDict[str, WorkspaceWriter] = OrderedDict()

    async def _bounded(self, awaitable: Awaitable[T]) -> T:
        async with self._gate:
            return await awaitable

    async def ensure(self, orgs: Iterable[str], sources: Iterable[TopicPartition]) -> None:
        """Open the writers of ``orgs`` not open yet (reading their positions for
        ``sources``, the partitions this process reads)."""
        wanted = set(sources)
        missing = [org for org in dict.fromkeys(orgs) if org not in self.open]
        opened = await asyncio.gather(
            *(self._bounded(WorkspaceWriter.open(self._store, org, wanted)) for org in missing)
        )
        for org, writer in zip(missing, opened, strict=True):
            self.open[org] = writer

    def __getitem__(self, org: str) -> WorkspaceWriter:
        self.open.move_to_end(org)
        return self.open[org]

    @property
    def pending(self) -> int:
        return sum(writer.pending for writer in self.open.values())

    @property
    def nbytes(self) -> int:
        return sum(writer.nbytes for writer in self.open.values())

    async def flush(self, positions: Mapping[TopicPartition, int]) -> FlushReport:
        """Commit every writer's pending rows; raises what the store raised (then the
        rows stay pending and the caller retries)."""
        started = time.monotonic()
        dirty = [writer for writer in self.open.values() if writer.pending]
        report = FlushReport(workspaces=len(dirty), rows=sum(w.pending for w in dirty))
        results = await asyncio.gather(
            *(self._bounded(writer.commit(positions)) for writer in dirty),
            return_exceptions=True,
        )
        errors = [result for result in results if isinstance(result, BaseException)]
        if errors:
            raise errors[0]
        report.conflicts = sum(result for result in results if isinstance(result, int))
        report.seconds = time.monotonic() - started
        return report

    def over_bounds(self) -> bool:
        """Evict writers with nothing pending while over the memory bound; True if still
        over, when only a commit helps."""
        nbytes = self.nbytes
        for org in list(self.open):
            if nbytes <= self._max_bytes:
                break
            writer = self.open[org]
            if not writer.pending:
                nbytes -= writer.nbytes
                del self.open[org]
        return nbytes > self._max_bytes
