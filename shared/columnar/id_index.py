"""Has this workspace seen an event id before? Exactly, in 8 bytes an id.

The stored facts' ``event_id`` column is a workspace's dedup set (every accepted event
of the retention period, whatever its day). Ingest keeps, per workspace it serves, the
64-bit hashes of those ids in one sorted array, and asks it a whole batch at a time:

* a hash that is absent proves the id is new (no false negatives);
* a hash that is present only makes the id a *candidate*: the caller confirms it
  against the stored ids themselves (one scan of the ``event_id`` column for the whole
  batch's candidates), so a hash collision can never drop an event.

New ids go to a small sorted tail that is merged into the main array when it grows past
a fraction of it, so adding is amortised O(n log n) per merge, never O(n) per batch.
The hash is Python's own ``hash`` of a ``str``, which is salted per process: the index
is never stored, only rebuilt from the ids, so that is no drawback — and it makes
crafted collisions impossible to plan from outside.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

_MERGE_FRACTION: Final = 8  # merge the tail once it holds 1/8 of the main array
_MIN_TAIL: Final = 4096

Hashes = npt.NDArray[np.int64]


def id_hashes(ids: Iterable[str]) -> Hashes:
    """The 64-bit hashes of ``ids``, in order."""
    return np.fromiter((hash(event_id) for event_id in ids), dtype=np.int64)


class IdIndex:
    """The hashes of one workspace's known event ids (see the module docstring)."""

    __slots__ = ("_main", "_tail")

    def __init__(self, known: Iterable[str] = ()) -> None:
        self._main: Hashes = np.unique(id_hashes(known))
        self._tail: Hashes = np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        """How many distinct hashes are held (ids, but for collisions)."""
        return len(self._main) + len(self._tail)

    @property
    def nbytes(self) -> int:
        return int(self._main.nbytes + self._tail.nbytes)

    def candidates(self, ids: Sequence[str]) -> list[int]:
        """Positions in ``ids`` whose hash is known: ids seen before, or (rarely) ids
        whose hash collides with one seen before. Every other id is certainly new."""
        if not ids:
            return []
        hashes = id_hashes(ids)
        known = _contains(self._main, hashes) | _contains(self._tail, hashes)
        return [int(position) for position in np.flatnonzero(known)]

    def add(self, ids: Iterable[str]) -> None:
        """Remember ``ids`` (accepted and now durable, or about to be)."""
        fresh = id_hashes(ids)
        if not len(fresh):
            return
        self._tail = np.union1d(self._tail, fresh)
        if len(self._tail) > max(_MIN_TAIL, len(self._main) // _MERGE_FRACTION):
            self._main = np.union1d(self._main, self._tail)
            self._tail = np.empty(0, dtype=np.int64)


def _contains(sorted_hashes: Hashes, hashes: Hashes) -> npt.NDArray[np.bool_]:
    if not len(sorted_hashes):
        return np.zeros(len(hashes), dtype=np.bool_)
    positions = np.searchsorted(sorted_hashes, hashes)
    positions[positions == len(sorted_hashes)] = 0
    return np.asarray(sorted_hashes[positions] == hashes, dtype=np.bool_)


def first_occurrences(ids: Sequence[str]) -> list[int]:
    """Positions of the first occurrence of each id in ``ids`` (the first applied wins)."""
    seen: set[str] = set()
    first: list[int] = []
    for position, event_id in enumerate(ids):
        if event_id not in seen:
            seen.add(event_id)
            first.append(position)
    return first
