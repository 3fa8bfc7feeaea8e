"""The aggregate split into the parts the export types read, so an export decodes and
merges only its own part.

Each export type reads a fixed subset of :class:`~shared.domain.aggregate.Aggregate`'s
fields (``shared.domain.export``): users the per-user stats and the payg sums, agents the
per-agent stats and their conversation sets, and so on. Month rollups are stored one part
per object, and day heads are decoded part by part.
"""

from __future__ import annotations

from typing import Any

from shared.contracts.requests import DataType
from shared.domain.aggregate import Aggregate

#: Part name -> the ``Aggregate`` fields (and ``to_json`` keys) it holds.
AGGREGATE_PARTS: dict[str, tuple[str, ...]] = {
    "users": ("users", "payg"),
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


def part_json(aggregate_json: dict[str, Any], part: str) -> dict[str, Any]:
    """The fields of ``part`` from an ``Aggregate.to_json()`` document (absent: omitted)."""
    return {name: aggregate_json[name] for name in AGGREGATE_PARTS[part] if name in aggregate_json}


def part_of(aggregate_json: dict[str, Any], part: str) -> Aggregate:
    """An ``Aggregate`` holding only ``part`` of a stored aggregate; the other fields stay
    empty and are never decoded (no sets built for agents a users export ignores)."""
    return Aggregate.from_json(part_json(aggregate_json, part))


def only_part(aggregate: Aggregate, part: str) -> Aggregate:
    """A view of ``aggregate`` with every field outside ``part`` empty (shares its dicts)."""
    restricted = Aggregate()
    for name in AGGREGATE_PARTS[part]:
        setattr(restricted, name, getattr(aggregate, name))
    return restricted
