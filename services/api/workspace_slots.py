"""Exports in flight per workspace, in this process: one workspace's burst of heavy
exports must not take every exporter slot and waiting place from the others.

``slots.enter(org_id)`` is False when the workspace already has ``limit`` requests
waiting for their completions here (the API answers 429 with ``Retry-After``); every
True is paired with ``slots.leave(org_id)``.
"""

from __future__ import annotations


class WorkspaceSlots:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held: dict[str, int] = {}

    def enter(self, org_id: str) -> bool:
        held = self._held.get(org_id, 0)
        if held >= self.limit:
            return False
        self._held[org_id] = held + 1
        return True

    def leave(self, org_id: str) -> None:
        held = self._held.get(org_id, 0) - 1
        if held > 0:
            self._held[org_id] = held
        else:
            self._held.pop(org_id, None)

    def held(self, org_id: str) -> int:
        return self._held.get(org_id, 0)
