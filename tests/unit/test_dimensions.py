"""As-of attributes and existence (contract §2), independent of arrival order."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.contracts.events import usage_event_adapter
from shared.domain.dimensions import DimensionHistory, dimension_update
from shared.domain.facts import NANO


def test_as_of_takes_latest_before_the_end_else_earliest() -> None:
    history = DimensionHistory()
    history.add("u1", 200, "e2", {"role": "admin", "deleted": False})
    history.add("u1", 100, "e1", {"role": "member", "deleted": False})
    history.add("u1", 300, "e3", {"role": "gone", "deleted": True})
    assert history.as_of("u1", 50) == ({"role": "member", "deleted": False}, False)
    assert history.as_of("u1", 101) == ({"role": "member", "deleted": False}, True)
    assert history.as_of("u1", 200) == ({"role": "member", "deleted": False}, True)
    assert history.as_of("u1", 201) == ({"role": "admin", "deleted": False}, True)
    assert history.as_of("u1", 10_000) == ({"role": "gone", "deleted": True}, False)
    assert history.as_of("nobody", 10_000) is None


def test_redelivered_upsert_is_ignored_and_ties_break_by_event_id() -> None:
    history = DimensionHistory()
    assert history.add("a1", 100, "e-b", {"name": "B"})
    assert history.add("a1", 100, "e-a", {"name": "A"})
    assert not history.add("a1", 100, "e-b", {"name": "B again"})
    assert history.latest("a1") == {"name": "B"}
    restored = DimensionHistory.from_json(history.to_json())
    assert not restored.add("a1", 999, "e-a", {"name": "dup"})


def test_prune_keeps_the_version_in_force_at_the_cutoff() -> None:
    history = DimensionHistory()
    for index, ts in enumerate([10, 20, 30, 40]):
        history.add("u", ts, f"e{index}", {"n": ts})
    assert history.prune_before(35) == 2
    assert history.as_of("u", 36) == ({"n": 30}, True)


def test_user_upsert_attributes() -> None:
    event = usage_event_adapter.validate_json(
        b'{"event_id":"e1","type":"user_upserted","org_id":"ws-1",'
        b'"occurred_at":"2026-01-01T00:00:00Z","user_id":"u1","name":null,'
        b'"joined_at":"2025-06-30T23:30:00-05:00","payg_limit":12.5}'
    )
    kind, entity, attributes = dimension_update(event)  # type: ignore[arg-type]
    assert (kind, entity) == ("users", "u1")
    assert attributes["name"] == ""
    assert attributes["joined_at"] == "2025-06-30"
    assert attributes["payg_limit"] == 12 * NANO + NANO // 2
    assert attributes["deleted"] is False
    settings = usage_event_adapter.validate_json(
        b'{"event_id":"e2","type":"workspace_settings","org_id":"ws-1",'
        b'"occurred_at":"2026-01-01T00:00:00Z","byok":true}'
    )
    assert dimension_update(settings) == (  # type: ignore[arg-type]
        "settings",
        "_workspace",
        {"byok": True, "user_level_data": True},
    )
    assert settings.occurred_at == datetime(2026, 1, 1, tzinfo=UTC)
