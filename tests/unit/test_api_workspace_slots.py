"""Issue 13, finding 7c: exports in flight are limited per workspace."""

from __future__ import annotations

from services.api.workspace_slots import WorkspaceSlots


def test_a_workspace_gets_its_limit_and_others_are_unaffected() -> None:
    slots = WorkspaceSlots(2)
    assert [slots.enter("ws-busy") for _ in range(3)] == [True, True, False]
    assert slots.enter("ws-quiet")
    slots.leave("ws-busy")
    assert slots.held("ws-busy") == 1
    assert slots.enter("ws-busy")
    for _ in range(2):
        slots.leave("ws-busy")
    assert slots.held("ws-busy") == 0
