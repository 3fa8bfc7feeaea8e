"""What the row builders read: the merged aggregate of the window, the dimension
histories, the workspace settings, and "as of the window's end" questions on them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from shared.contracts.requests import DataType
from shared.domain.aggregate import Aggregate
from shared.domain.dimensions import DEFAULT_SETTINGS, SETTINGS_ENTITY, DimensionHistory

Row = dict[str, str]
#: (main count, identity): rows sort by count descending, then identity ascending.
RowKey = tuple[int, tuple[Any, ...]]

#: Dimension kinds (``shared.domain.keys.DIM_KINDS``) each export reads.
DIMS_NEEDED: dict[DataType, tuple[str, ...]] = {
    DataType.USERS: ("users",),
    DataType.ASSISTANTS: ("agents", "users"),
    DataType.API_KEYS: ("api_keys",),
    DataType.PROJECTS: ("projects",),
    DataType.MODELS: (),
}


@dataclass(frozen=True, slots=True)
class WorkspaceOptions:
    """Workspace settings that shape an export (contract §2 defaults)."""

    byok: bool = bool(DEFAULT_SETTINGS["byok"])
    user_level_data: bool = bool(DEFAULT_SETTINGS["user_level_data"])

    @classmethod
    def latest(cls, history: DimensionHistory) -> WorkspaceOptions:
        """The latest version known, whatever the window (contract: "at export time")."""
        attributes = history.latest(SETTINGS_ENTITY)
        if attributes is None:
            return cls()
        return cls(
            byok=bool(attributes.get("byok", False)),
            user_level_data=bool(attributes.get("user_level_data", True)),
        )


@dataclass(frozen=True, slots=True)
class ExportInputs:
    """Everything one export's rows are computed from."""

    org_id: str
    data_type: DataType
    group_by: str | None
    period_start: str
    period_end: str
    end_ms: int
    aggregate: Aggregate
    options: WorkspaceOptions
    dims: Mapping[str, DimensionHistory] = field(default_factory=dict)

    def history(self, kind: str) -> DimensionHistory:
        return self.dims.get(kind) or DimensionHistory()


class RowSource(Protocol):
    """One export type's rows: cheap keys first (to sort and count), cells on demand."""

    def keys(self) -> list[RowKey]: ...

    def row(self, key: RowKey) -> Row: ...


def attributes_at(history: DimensionHistory, entity_id: str, end_ms: int) -> dict[str, Any]:
    """Attributes as of the window's end, else the earliest known, else none."""
    found = history.as_of(entity_id, end_ms)
    return found[0] if found is not None else {}


def existing_at(history: DimensionHistory, end_ms: int) -> set[str]:
    """Entities with an upsert before the end whose latest such upsert is not a deletion."""
    existing = set()
    for entity_id in history.entity_ids():
        found = history.as_of(entity_id, end_ms)
        if found is not None and found[1]:
            existing.add(entity_id)
    return existing


def deleted_at(history: DimensionHistory, entity_id: str, end_ms: int) -> bool:
    """True only when the latest upsert before the end is a deletion (none: not deleted)."""
    versions = history.versions.get(entity_id)
    if not versions or versions[0][0] >= end_ms:
        return False
    found = history.as_of(entity_id, end_ms)
    return found is not None and not found[1]
