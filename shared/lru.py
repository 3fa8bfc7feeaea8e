"""A bounded map that forgets its least recently written (or touched) entries.

Reads do not count as uses unless the caller says so with :meth:`LruMap.touch`: the
caches that use this decide themselves whether a hit keeps an entry (the id cache of a
writer does, a rate limiter's bucket does not).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Generic, TypeVar, overload

K = TypeVar("K")
V = TypeVar("V")
D = TypeVar("D")


class LruMap(Generic[K, V]):
    """At most ``max_entries`` entries; writing one more drops the oldest."""

    __slots__ = ("_entries", "max_entries")

    def __init__(self, max_entries: int) -> None:
        if max_entries < 0:
            raise ValueError(f"max_entries must be >= 0, not {max_entries}")
        self.max_entries = max_entries
        self._entries: OrderedDict[K, V] = OrderedDict()

    @overload
    def get(self, key: K) -> V | None: ...
    @overload
    def get(self, key: K, default: D) -> V | D: ...
    def get(self, key: K, default: object = None) -> object:
        """The value of ``key`` (not counted as a use: see :meth:`touch`)."""
        return self._entries.get(key, default)

    def put(self, key: K, value: V) -> None:
        """Sets ``key`` as the most recent entry, then drops the oldest beyond the bound."""
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def touch(self, key: K) -> None:
        """Makes ``key`` (present) the most recent entry."""
        self._entries.move_to_end(key)

    def clear(self) -> None:
        self._entries.clear()

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[K]:
        """Keys, oldest first."""
        return iter(self._entries)
