"""The aggregate split into the parts the export types read, so an export decodes and
merges only its own part.

Each export type reads a fixed subset of :class:`~shared.domain.aggregate.Aggregate`'s
fields (``shared.domain.export``): users the per-user stats and the payg sums, agents the
per-agent stats and their conversation sets, and so on. Month rollups are stored one part
per object, and day heads are decoded part by part.

One part is *derived*: ``user_totals``, the per-user totals over models
(:func:`~shared.domain.aggregate.collapse_users`) that the users export without
``group_by`` reads instead of every (user, model). Day heads do not store it: it is
collapsed from their ``users`` when read; month rollups store it like any part.
"""

from __future__ import annotations

from typing import Any

from shared.contracts.requests import DataType
from shared.domain.aggregate import Aggregate, collapse_users

#: Part name -> the ``Aggregate`` fields (and ``to_json`` keys) it holds.
AGGREGATE_PARTS: dict[str, tuple[str, ...]] = {
    "users": ("users", "payg"),
    "user_totals": ("user_totals", "payg"),
    "agents": ("agents", "agent_conversations"),
    "api_keys": ("api_keys",),
    "projects": ("projects",),
    "models": ("models",),
}

#: The part each export type's rows are built from.
PART_OF: dict[DataType, str] = {
    DataType.USERS: "users",
    DataType.ASSISTANTS: "agents",
    DataType.API_KEYS: "api_keys",
    DataType.PROJECTS: "projects",
    DataType.MODELS: "models",
}


def part_for(data_type: DataType, group_by: str | None) -> str:
    """The part an export reads: per-user totals when users are not grouped by model."""
    if data_type is DataType.USERS and group_by is None:
        return "user_totals"
    return PART_OF[data_type]


def part_json(aggregate_json: dict[str, Any], part: str) -> dict[str, Any]:
    """The fields of ``part`` from an ``Aggregate.to_json()`` document (absent: omitted);
    ``user_totals`` collapsed from ``users`` when the document has none (a day head)."""
    if part == "user_totals" and "user_totals" not in aggregate_json and "users" in aggregate_json:
        aggregate_json = {**aggregate_json, "user_totals": collapse_users(aggregate_json["users"])}
    return {name: aggregate_json[name] for name in AGGREGATE_PARTS[part] if name in aggregate_json}


def part_of(aggregate_json: dict[str, Any], part: str) -> Aggregate:
    """An ``Aggregate`` holding only ``part`` of a stored aggregate; the other fields stay
    empty and are never decoded (no sets built for agents a users export ignores)."""
    return Aggregate.from_json(part_json(aggregate_json, part))


def only_part(aggregate: Aggregate, part: str) -> Aggregate:
    """A view of ``aggregate`` with every field outside ``part`` empty (shares its dicts;
    ``user_totals`` is collapsed from ``users`` if the aggregate has none)."""
    restricted = Aggregate()
    for name in AGGREGATE_PARTS[part]:
        setattr(restricted, name, getattr(aggregate, name))
    if part == "user_totals" and not aggregate.user_totals:
        restricted.user_totals = collapse_users(aggregate.users)
    return restricted
