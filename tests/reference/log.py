"""The deduplicated event log of every workspace, and the "as of" questions on it.

Built once from the raw events (in arrival order) and reusable for many exports, so a
test can compare dozens of windows against the same simulated stream cheaply.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tests.reference.parsing import Call, Invalid, Payg, Record, Settings, Upsert, parse_event

# Upserts of one entity: (occurred_at, event_id, upsert), in arrival order. Versions at
# the same instant are ordered by event_id, so answers never depend on arrival order.
History = list[tuple[datetime, str, Upsert]]


@dataclass
class OrgLog:
    """Every valid, first-seen event of one workspace."""

    messages: list[Call] = field(default_factory=list)
    api_requests: list[Call] = field(default_factory=list)
    payg: list[Payg] = field(default_factory=list)
    settings: list[tuple[datetime, str, Settings]] = field(default_factory=list)
    # type ("user_upserted", ...) -> entity id -> history
    upserts: dict[str, dict[str, History]] = field(default_factory=dict)

    def workspace_settings(self) -> tuple[bool, bool]:
        """(byok, user_level_data): the latest known, whatever the window (contract §2)."""
        if not self.settings:
            return False, True
        latest = max(self.settings, key=lambda item: (item[0], item[1]))[2]
        return latest.byok, latest.user_level_data

    def history(self, kind: str) -> dict[str, History]:
        return self.upserts.get(kind, {})

    def as_of(self, kind: str, entity_id: str, end: datetime) -> Upsert | None:
        """The upsert in force at the window's end (exclusive), else the earliest known.

        Ties on ``occurred_at`` are ordered by ``event_id`` (decision 7).
        """
        versions = self.history(kind).get(entity_id)
        if not versions:
            return None
        before = [item for item in versions if item[0] < end]
        if before:
            return max(before, key=lambda item: (item[0], item[1]))[2]
        return min(versions, key=lambda item: (item[0], item[1]))[2]

    def deleted_at(self, kind: str, entity_id: str, end: datetime) -> bool:
        """Whether the latest upsert before the end says deleted (no upsert: not deleted)."""
        versions = [item for item in self.history(kind).get(entity_id, []) if item[0] < end]
        if not versions:
            return False
        return max(versions, key=lambda item: (item[0], item[1]))[2].deleted

    def existing_at(self, kind: str, end: datetime) -> set[str]:
        """Entities that had an upsert before the end and were not deleted by then."""
        return {
            entity_id
            for entity_id, versions in self.history(kind).items()
            if any(item[0] < end for item in versions) and not self.deleted_at(kind, entity_id, end)
        }


@dataclass
class EventLog:
    """All workspaces; ``invalid`` and ``duplicates`` count what was dropped, for tests."""

    orgs: dict[str, OrgLog] = field(default_factory=dict)
    invalid: int = 0
    duplicates: int = 0

    def org(self, org_id: str) -> OrgLog:
        return self.orgs.get(org_id) or OrgLog()


def build_log(events: Iterable[bytes | dict[str, Any]], *, valid_at: datetime) -> EventLog:
    """Validate, then deduplicate by (org_id, event_id) keeping the first valid arrival."""
    log = EventLog()
    seen: set[tuple[str, str]] = set()
    for raw in events:
        try:
            record: Record = parse_event(raw, valid_at=valid_at)
        except Invalid:
            log.invalid += 1
            continue
        key = (record.org_id, record.event_id)
        if key in seen:
            log.duplicates += 1
            continue
        seen.add(key)
        org = log.orgs.setdefault(record.org_id, OrgLog())
        if isinstance(record, Call):
            (org.messages if record.type == "message" else org.api_requests).append(record)
        elif isinstance(record, Payg):
            org.payg.append(record)
        elif isinstance(record, Settings):
            org.settings.append((record.at, record.event_id, record))
        else:
            by_entity = org.upserts.setdefault(record.type, {})
            by_entity.setdefault(record.entity_id, []).append((record.at, record.event_id, record))
    return log
