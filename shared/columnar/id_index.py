"""Has this workspace seen an event id before? Exactly, in 12 bytes an id.

The stored facts' ``event_id`` column is a workspace's dedup set (every accepted event
of the retention period, whatever its day). Ingest keeps, per workspace it serves, the
64-bit hashes of those ids in one sorted array, and asks it a whole batch at a time:

* a hash that is absent proves the id is new (no false negatives);
* a hash that is present only makes the id a *candidate*: the index also keeps the UTC
  day each id is stored under, and the caller confirms a candidate against the stored
  ids of those days (one partition's ``event_id`` column), so a hash collision can never
  drop an event. 12 bytes an id: 5.5 million ids take 66 MB.

New ids go to a small sorted tail that is merged into the main array when it grows past
a fraction of it, so adding is amortised O(n log n) per merge, never O(n) per batch.
The hash is Python's own ``hash`` of a ``str``, which is salted per process: the index
is never stored, only rebuilt from the ids, so that is no drawback — and it makes
crafted collisions impossible to plan from outside.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

_MERGE_FRACTION: Final = 8  # merge the tail once it holds 1/8 of the main array
_MIN_TAIL: Final = 4096

Hashes = npt.NDArray[np.int64]


def id_hashes(ids: Iterable[str]) -> Hashes:
    """The 64-bit hashes of ``ids``, in order."""
    return np.fromiter((hash(event_id) for event_id in ids), dtype=np.int64)


Days = npt.NDArray[np.int32]


class IdIndex:
    """The hashes of one workspace's known event ids, each with the UTC day number
    (days since 1970-01-01) its event is stored under (see the module docstring)."""

    __slots__ = ("_main", "_main_days", "_tail", "_tail_days")

    def __init__(self) -> None:
        self._main: Hashes = np.empty(0, dtype=np.int64)
        self._main_days: Days = np.empty(0, dtype=np.int32)
        self._tail: Hashes = np.empty(0, dtype=np.int64)
        self._tail_days: Days = np.empty(0, dtype=np.int32)

    def __len__(self) -> int:
        """How many ids are held."""
        return len(self._main) + len(self._tail)

    @property
    def nbytes(self) -> int:
        arrays = (self._main, self._main_days, self._tail, self._tail_days)
        return int(sum(array.nbytes for array in arrays))

    def candidates(self, ids: Sequence[str]) -> dict[int, set[int]]:
        """Positions in ``ids`` whose hash is known, each with the days of the stored
        ids of that hash: ids seen before, or (rarely) ids whose hash collides with one
        seen before. Every other id is certainly new."""
        found: dict[int, set[int]] = {}
        if not ids:
            return found
        hashes = id_hashes(ids)
        for known, days in ((self._main, self._main_days), (self._tail, self._tail_days)):
            if not len(known):
                continue
            left = np.searchsorted(known, hashes, side="left")
            right = np.searchsorted(known, hashes, side="right")
            for position in np.flatnonzero(right > left):
                where = int(position)
                found.setdefault(where, set()).update(
                    int(day) for day in days[left[where] : right[where]]
                )
        return found

    def add(self, ids: Sequence[str], days: Sequence[int] | npt.NDArray[np.integer[Any]]) -> None:
        """Remember ``ids``, stored under the UTC day numbers ``days``."""
        fresh = id_hashes(ids)
        if not len(fresh):
            return
        self._tail, self._tail_days = _merged(
            self._tail, self._tail_days, fresh, np.asarray(days, dtype=np.int32)
        )
        if len(self._tail) > max(_MIN_TAIL, len(self._main) // _MERGE_FRACTION):
            self._main, self._main_days = _merged(
                self._main, self._main_days, self._tail, self._tail_days
            )
            self._tail = np.empty(0, dtype=np.int64)
            self._tail_days = np.empty(0, dtype=np.int32)


def _merged(hashes: Hashes, days: Days, more: Hashes, more_days: Days) -> tuple[Hashes, Days]:
    joined = np.concatenate([hashes, more])
    order = np.argsort(joined, kind="stable")
    return joined[order], np.concatenate([days, more_days])[order]


def first_occurrences(ids: Sequence[str]) -> list[int]:
    """Positions of the first occurrence of each id in ``ids`` (the first applied wins)."""
    seen: set[str] = set()
    first: list[int] = []
    for position, event_id in enumerate(ids):
        if event_id not in seen:
            seen.add(event_id)
            first.append(position)
    return first
