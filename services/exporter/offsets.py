"""Which offsets may be committed when requests of one partition finish out of order.

Requests run concurrently, so a small request fetched after a large one may finish
first. The committed offset of a partition may only move up to its lowest unfinished
request: a crash then re-delivers the unfinished ones (and perhaps some finished ones,
which their records answer again without new work), never skips one.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

P = TypeVar("P", bound=Hashable)


class OffsetTracker(Generic[P]):
    """Per partition: offsets started and not finished, and the next offset to fetch."""

    def __init__(self) -> None:
        self._pending: dict[P, set[int]] = {}
        self._next: dict[P, int] = {}
        self._committed: dict[P, int] = {}

    def started(self, partition: P, offset: int) -> None:
        self._pending.setdefault(partition, set()).add(offset)
        self._next[partition] = max(self._next.get(partition, 0), offset + 1)

    def finished(self, partition: P, offset: int) -> None:
        pending = self._pending.get(partition)
        if pending is not None:
            pending.discard(offset)

    def pending(self) -> int:
        return sum(len(offsets) for offsets in self._pending.values())

    def committable(self) -> dict[P, int]:
        """Offsets to commit now: per partition, its lowest unfinished offset (or the
        next to fetch when none is unfinished), where that moved since the last commit."""
        offsets = {}
        for partition, next_offset in self._next.items():
            pending = self._pending.get(partition)
            offset = min(pending) if pending else next_offset
            if self._committed.get(partition) != offset:
                offsets[partition] = offset
        return offsets

    def committed(self, offsets: dict[P, int]) -> None:
        self._committed.update(offsets)

    def forget(self, partitions: Iterable[P]) -> None:
        """Partitions revoked: their next owner starts from what was committed."""
        for partition in partitions:
            self._pending.pop(partition, None)
            self._next.pop(partition, None)
            self._committed.pop(partition, None)
