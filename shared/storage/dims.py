"""Dimension histories (entity attributes over time) of one workspace and entity kind,
in memory and durable as one document, written with the same ETag fencing as day heads."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from shared import codec
from shared.adapters.s3 import ObjectStore
from shared.domain import keys
from shared.domain.dimensions import DimensionHistory

#: (entity id, occurred ms, event id, attributes)
DimensionUpdate = tuple[str, int, str, dict[str, Any]]


@dataclass
class DimsState:
    org_id: str
    kind: str
    etag: str | None = None
    history: DimensionHistory = field(default_factory=DimensionHistory)
    pending: list[DimensionUpdate] = field(default_factory=list)

    def apply(self, update: DimensionUpdate) -> bool:
        entity_id, occurred, event_id, attributes = update
        if not self.history.add(entity_id, occurred, event_id, attributes):
            return False
        self.pending.append(update)
        return True

    def pending_changes(self) -> list[DimensionUpdate]:
        return list(self.pending)

    @property
    def dirty(self) -> bool:
        return bool(self.pending)

    @property
    def weight(self) -> int:
        return sum(len(versions) for versions in self.history.versions.values())

    @property
    def nbytes(self) -> int:
        """An estimate of the memory held: ≈ 300 bytes per attribute version."""
        return 300 * self.weight


async def load_dims(store: ObjectStore, org_id: str, kind: str) -> DimsState:
    state = DimsState(org_id=org_id, kind=kind)
    stored = await store.get(keys.dims_key(org_id, kind))
    if stored is not None:
        state.etag = stored.etag
        state.history = DimensionHistory.from_json(codec.loads(stored.body))
    return state


async def read_dims(store: ObjectStore, org_id: str, kind: str) -> DimensionHistory:
    return (await load_dims(store, org_id, kind)).history


async def write_dims(store: ObjectStore, state: DimsState) -> None:
    """Raises ``PreconditionFailed`` if another writer got there first."""
    document = state.history.to_json() | {"write_id": uuid.uuid4().hex}
    state.etag = await store.put(
        keys.dims_key(state.org_id, state.kind),
        codec.dumps(document),
        if_match=state.etag,
        if_none_match=state.etag is None,
    )
    state.pending = []
