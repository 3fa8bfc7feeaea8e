"""Dimension history: append-only attribute versions per entity, answered "as of" a time.

Contract §2: an export shows the attributes of the latest upsert with ``occurred_at`` at
or before the window's end (else the earliest upsert known); an entity *exists* at the
window's end when that version is not deleted. Two versions with the same ``occurred_at``
are ordered by ``event_id`` so the answer never depends on arrival order. Versions carry
their ``event_id`` so a redelivered upsert is recognised and ignored.
"""

from __future__ import annotations

import bisect
from typing import Any

from pydantic import BaseModel

from shared.contracts.events import (
    AgentUpserted,
    ApiKeyUpserted,
    ProjectUpserted,
    UserUpserted,
    WorkspaceSettings,
    epoch_ms,
)
from shared.domain.facts import to_nano

#: Versions are [occurred_ms, event_id, attributes].
Version = list[Any]
SETTINGS_ENTITY = "_workspace"
DEFAULT_SETTINGS: dict[str, Any] = {"byok": False, "user_level_data": True}


class DimensionHistory:
    """Versions of every entity of one kind in one workspace."""

    __slots__ = ("_event_ids", "versions")

    def __init__(self, versions: dict[str, list[Version]] | None = None) -> None:
        self.versions: dict[str, list[Version]] = versions or {}
        self._event_ids = {version[1] for history in self.versions.values() for version in history}

    def add(
        self, entity_id: str, occurred_ms: int, event_id: str, attributes: dict[str, Any]
    ) -> bool:
        """Record a version; False (and no change) if this event was recorded before."""
        if event_id in self._event_ids:
            return False
        self._event_ids.add(event_id)
        history = self.versions.setdefault(entity_id, [])
        bisect.insort(
            history,
            [occurred_ms, event_id, attributes],
            key=lambda version: (version[0], version[1]),
        )
        return True

    def as_of(self, entity_id: str, end_ms: int) -> tuple[dict[str, Any], bool] | None:
        """(attributes, existed) at the instant ``end_ms`` (exclusive).

        ``existed`` is true when an upsert before ``end_ms`` exists and is not deleted.
        Without a version before ``end_ms`` the earliest known one is returned,
        with ``existed`` false.
        """
        history = self.versions.get(entity_id)
        if not history:
            return None
        index = bisect.bisect_left(history, end_ms, key=lambda version: version[0])
        if index == 0:
            return history[0][2], False
        attributes = history[index - 1][2]
        return attributes, not attributes.get("deleted", False)

    def latest(self, entity_id: str) -> dict[str, Any] | None:
        history = self.versions.get(entity_id)
        return history[-1][2] if history else None

    def entity_ids(self) -> list[str]:
        return list(self.versions)

    def to_json(self) -> dict[str, Any]:
        return {"versions": self.versions}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DimensionHistory:
        return cls(data.get("versions") or {})

    def prune_before(self, cutoff_ms: int) -> int:
        """Drop versions older than ``cutoff_ms`` that a later version (also before the
        cutoff) supersedes; returns how many were dropped. The event ids stay known."""
        dropped = 0
        for history in self.versions.values():
            index = bisect.bisect_left(history, cutoff_ms, key=lambda version: version[0])
            if index > 1:
                del history[: index - 1]
                dropped += index - 1
        return dropped


DimensionEvent = UserUpserted | AgentUpserted | ProjectUpserted | ApiKeyUpserted | WorkspaceSettings


def dimension_update(event: DimensionEvent) -> tuple[str, str, dict[str, Any]]:
    """(kind, entity id, attributes) of a dimension event."""
    if isinstance(event, UserUpserted):
        joined = event.joined_at.isoformat()[:10] if event.joined_at is not None else ""
        limit = None if event.payg_limit is None else to_nano(event.payg_limit)
        return (
            "users",
            event.user_id,
            {
                "name": event.name,
                "email": event.email,
                "role": event.role,
                "joined_at": joined,
                "department": event.department,
                "company_name": event.company_name,
                "license_type": event.license_type,
                "payg_limit": limit,
                "deleted": event.deleted,
            },
        )
    if isinstance(event, AgentUpserted):
        return (
            "agents",
            event.assistant_id,
            _attributes(event, "name", "description", "url", "owner_id", "owner_email", "deleted"),
        )
    if isinstance(event, ProjectUpserted):
        return (
            "projects",
            event.project_id,
            _attributes(event, "name", "owner_id", "owner_email", "deleted"),
        )
    if isinstance(event, ApiKeyUpserted):
        return "api_keys", event.api_key_id, _attributes(event, "name", "deleted")
    return (
        "settings",
        SETTINGS_ENTITY,
        {"byok": event.byok, "user_level_data": event.user_level_data},
    )


def _attributes(event: BaseModel, *names: str) -> dict[str, Any]:
    return {name: getattr(event, name) for name in names}


def occurred_ms(event: DimensionEvent) -> int:
    return epoch_ms(event.occurred_at)
