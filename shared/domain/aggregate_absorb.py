"""Merging documents nothing else holds, without copying them.

:meth:`Aggregate.merge` leaves its argument unchanged, so an entry new to the target is
copied. An exporter merging freshly decoded month rollups and day heads owns them: an
entry that first appears in one document (most of a month's users do) can simply be
taken over. Same result as ``merge``; the unit tests check both agree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from shared.domain.aggregate import (
    Aggregate,
    add_counts,
    add_sums,
    merge_agent_stats,
    merge_user_stats,
    merge_user_totals,
)

Stats = TypeVar("Stats", list[Any], list[int])
Key = TypeVar("Key")
Entry = TypeVar("Entry")


def absorb(into: Aggregate, other: Aggregate) -> None:
    """``into.merge(other)``, but taking over ``other``'s inner objects wherever ``into``
    has no entry yet instead of copying them; ``other`` must not be used afterwards."""
    _absorb_by_model(into.users, other.users, merge_user_stats)
    _absorb_entries(into.user_totals, other.user_totals, merge_user_totals)
    add_counts(into.payg, other.payg)
    _absorb_by_model(into.agents, other.agents, merge_agent_stats)
    _absorb_entries(into.agent_conversations, other.agent_conversations, set.update)
    _absorb_by_model(into.api_keys, other.api_keys, add_sums)
    add_counts(into.projects, other.projects)
    _absorb_entries(into.models, other.models, add_sums)


def _absorb_entries(
    mine: dict[Key, Entry], theirs: dict[Key, Entry], merge: Callable[[Entry, Entry], Any]
) -> None:
    for key, their_entry in theirs.items():
        my_entry = mine.get(key)
        if my_entry is None:
            mine[key] = their_entry
        else:
            merge(my_entry, their_entry)


def _absorb_by_model(
    mine_by_entity: dict[str, dict[str, Stats]],
    theirs_by_entity: dict[str, dict[str, Stats]],
    merge_stats: Callable[[Stats, Stats], None],
) -> None:
    for entity, their_models in theirs_by_entity.items():
        my_models = mine_by_entity.get(entity)
        if my_models is None:
            mine_by_entity[entity] = their_models
        else:
            _absorb_entries(my_models, their_models, merge_stats)
