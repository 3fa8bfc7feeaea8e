"""The bounded map the API's caches, its rate limiter and the writers' id cache share."""

from __future__ import annotations

import pytest

from shared.lru import LruMap


def test_writing_past_the_bound_drops_the_least_recently_written() -> None:
    lru: LruMap[str, int] = LruMap(2)
    lru.put("a", 1)
    lru.put("b", 2)
    lru.put("a", 3)  # rewriting makes it the most recent
    lru.put("c", 4)
    assert list(lru) == ["a", "c"]
    assert lru.get("a") == 3
    assert "b" not in lru
    assert len(lru) == 2


def test_a_read_is_not_a_use_unless_touched() -> None:
    lru: LruMap[str, int] = LruMap(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1
    lru.put("c", 3)
    assert list(lru) == ["b", "c"]  # the read kept nothing
    lru.touch("b")
    lru.put("d", 4)
    assert list(lru) == ["b", "d"]
    assert lru.get("c", -1) == -1


def test_a_zero_bound_keeps_nothing_and_a_negative_one_is_refused() -> None:
    lru: LruMap[str, int] = LruMap(0)
    lru.put("a", 1)
    assert len(lru) == 0
    with pytest.raises(ValueError, match="max_entries"):
        LruMap(-1)


def test_clear_empties_it() -> None:
    lru: LruMap[int, int] = LruMap(3)
    lru.put(1, 1)
    lru.clear()
    assert list(lru) == []
