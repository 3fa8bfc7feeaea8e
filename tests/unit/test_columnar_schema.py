"""Folded facts and dimension versions become rows of the stored tables' schemas."""

from __future__ import annotations

from datetime import date

from shared.columnar.schema import DIMENSIONS, FACTS, dimensions_table, facts_table, utc_day
from shared.domain.facts import API_REQUEST, MESSAGE, PAYG

TS = 1_767_225_599_999  # 2025-12-31T23:59:59.999Z


def test_each_fact_kind_fills_its_columns_and_leaves_the_others_null() -> None:
    facts = [
        (MESSAGE, "e1", TS, "u1", None, "p1", "c1", "m", "prov", False, "", "WEB", ["a", "b"],
         1, 10, 5, 1, 2, 3500),
        (API_REQUEST, "e2", TS + 1, "k1", "m", "prov", True, "dep", "API", 2, 10, 5, 1, 0, 4),
        (PAYG, "e3", TS + 2, "u1", 12),
    ]  # fmt: skip
    table = facts_table("ws-1", facts)
    assert table.schema == FACTS
    message, request, payg = table.to_pylist()
    assert message == {
        "org_id": "ws-1", "day": date(2025, 12, 31), "kind": "message", "event_id": "e1",
        "occurred_ms": TS, "user_id": "u1", "api_key_id": None, "assistant_id": None,
        "project_id": "p1", "conversation_id": "c1", "model": "m", "provider": "prov",
        "byok": False, "deployment": "", "source": "WEB", "actions": ["a", "b"], "requests": 1,
        "prompt_tokens": 10, "completion_tokens": 5, "cached_tokens": 1, "creation_tokens": 2,
        "cost_nano": 3500, "amount_nano": None,
    }  # fmt: skip
    assert (request["kind"], request["api_key_id"], request["user_id"]) == (
        "api_request",
        "k1",
        None,
    )
    assert (request["day"], request["byok"], request["deployment"]) == (
        date(2026, 1, 1),
        True,
        "dep",
    )
    assert (request["requests"], request["cost_nano"], request["actions"]) == (2, 4, None)
    assert (payg["kind"], payg["user_id"], payg["amount_nano"]) == ("payg", "u1", 12)
    assert [payg[name] for name in ("model", "cost_nano", "requests")] == [None, None, None]


def test_utc_day_is_the_day_of_the_instant_before_and_after_midnight() -> None:
    assert utc_day(0) == date(1970, 1, 1)
    assert utc_day(-1) == date(1969, 12, 31)
    assert (utc_day(TS), utc_day(TS + 1)) == (date(2025, 12, 31), date(2026, 1, 1))


def test_dimension_versions_carry_deleted_as_a_column_and_attributes_as_json() -> None:
    table = dimensions_table(
        "ws-1",
        [
            ("users", "u1", 5, "e9", {"name": "Zoë", "deleted": False}),
            ("agents", "a1", 6, "e10", {"name": "x", "deleted": True}),
            ("settings", "_workspace", 7, "e11", {"byok": True, "user_level_data": False}),
        ],
    )
    assert table.schema == DIMENSIONS
    rows = table.to_pylist()
    assert [row["deleted"] for row in rows] == [False, True, False]
    assert rows[0]["attributes"] == '{"name":"Zoë","deleted":false}'
    assert [row["kind"] for row in rows] == ["users", "agents", "settings"]
