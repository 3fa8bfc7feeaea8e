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
)

Stats = TypeVar("Stats", list[Any], list[int])


def absorb(into: Aggregate, other: Aggregate) -> None:
    """``into.merge(other)``, but taking over ``other``'s inner objects wherever ``into``
    has no entry yet instead of copying them; ``other`` must not be used afterwards."""
    _absorb_by_model(into.users, other.users, merge_user_stats)
    add_counts(into.payg, other.payg)
    _absorb_by_model(into.agents, other.agents, merge_agent_stats)
    for assistant, conversations in other.agent_conversations.items():
        known = into.agent_conversations.get(assistant)
        if known is None:
            into.agent_conversations[assistant] = conversations
        else:
            known.update(conversations)
    _absorb_by_model(into.api_keys, other.api_keys, add_sums)
    add_counts(into.projects, other.projects)
    for model_key, their_m in other.models.items():
        mine_m = into.models.get(model_key)
        if mine_m is None:
            into.models[model_key] = their_m
        else:
            add_sums(mine_m, their_m)


def _absorb_by_model(
    mine_by_entity: dict[str, dict[str, Stats]],
    theirs_by_entity: dict[str, dict[str, Stats]],
    merge_stats: Callable[[Stats, Stats], None],
) -> None:
    for entity, their_models in theirs_by_entity.items():
        my_models = mine_by_entity.get(entity)
        if my_models is None:
            mine_by_entity[entity] = their_models
            continue
        for model, theirs in their_models.items():
            mine = my_models.get(model)
            if mine is None:
                my_models[model] = theirs
            else:
                merge_stats(mine, theirs)
