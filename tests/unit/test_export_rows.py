"""The export queries on hand-made workspaces: each contract §5 rule, row by row."""

from __future__ import annotations

import csv
import io
from typing import Any

from shared.columnar.queries.engine import connect, export_file
from shared.columnar.schema import DimensionVersion, dimensions_table, facts_table
from shared.contracts.requests import DataType
from shared.domain.export.context import WorkspaceOptions
from shared.domain.facts import API_REQUEST, MESSAGE, NANO, PAYG, Fact

END = 1_000_000  # the window's end (exclusive), in ms
_ids = iter(range(1_000_000))


def message(
    user: str,
    model: str = "gpt-4.1",
    *,
    agent: str | None = None,
    project: str | None = None,
    conversation: str | None = None,
    actions: tuple[str, ...] = (),
    prompt: int = 10,
    completion: int = 5,
    cached: int = 2,
    creation: int = 1,
    cost: float = 0.0,
    byok: bool = False,
    source: str = "WEB",
    deployment: str = "",
    provider: str = "openai",
) -> Fact:
    return (
        MESSAGE,
        f"e{next(_ids)}",
        500,
        user,
        agent,
        project,
        conversation,
        model,
        provider,
        byok,
        deployment,
        source,
        sorted(actions),
        1,
        prompt,
        completion,
        cached,
        creation,
        round(cost * NANO),
    )


def api_request(
    key: str,
    model: str = "gpt-4.1",
    *,
    requests: int = 1,
    cost: float = 0.0,
    byok: bool = False,
    provider: str = "openai",
) -> Fact:
    return (
        API_REQUEST,
        f"e{next(_ids)}",
        500,
        key,
        model,
        provider,
        byok,
        "",
        "API",
        requests,
        100,
        50,
        10,
        0,
        round(cost * NANO),
    )


def payg(user: str, amount: float) -> Fact:
    return (PAYG, f"e{next(_ids)}", 500, user, round(amount * NANO))


#: An entity's versions: (entity_id, occurred_ms, event_id, attributes).
Versions = list[tuple[str, int, str, dict[str, Any]]]


def history(*versions: tuple[str, int, dict[str, Any]]) -> Versions:
    return [
        (entity, at, f"v{next(_ids)}", {"deleted": False} | attributes)
        for entity, at, attributes in versions
    ]


def export(
    data_type: DataType,
    facts: list[Fact],
    *,
    group_by: str | None = None,
    byok: bool = True,
    private: bool = False,
    **dims: Versions,
) -> list[dict[str, str]]:
    """The rows of the export of [0, END) by the type's query, as the CSV has them."""
    versions: list[DimensionVersion] = [
        (kind, *version) for kind, kind_versions in dims.items() for version in kind_versions
    ]
    con = connect(facts_table("ws-1", facts), dimensions_table("ws-1", versions))
    try:
        result = export_file(
            con,
            data_type,
            org_id="ws-1",
            group_by=group_by,
            start_ms=0,
            end_ms=END,
            period_start="2026-01-01",
            period_end="2026-01-31",
            options=WorkspaceOptions(byok=byok, user_level_data=not private),
        )
    finally:
        con.close()
    lines = list(csv.reader(io.StringIO(result.data.decode("utf-8"), newline="")))
    assert lines[0] == result.header
    assert len(lines) == result.rows + 1
    return [dict(zip(result.header, line, strict=True)) for line in lines[1:]]


USERS = history(
    ("u1", 10, {"name": "Old Name", "role": "member", "payg_limit": 100 * NANO}),
    ("u1", END + 1, {"name": "Renamed after the end", "role": "admin"}),
    ("u2", 10, {"name": "Bea"}),
    ("u4", 10, {"name": "Idle", "joined_at": "2025-05-01"}),
    ("u5", 10, {"name": "Gone"}),
    ("u5", 20, {"name": "Gone", "deleted": True}),
    ("u6", 10, {"name": "Spender", "payg_limit": 0}),
    ("u7", END, {"name": "Joins exactly at the end"}),
)
USER_FACTS = [
    message("u1", "gpt-4.1", actions=("canvas", "web_search"), cost=0.0000015),
    message("u1", "gpt-4.1", project="p1", actions=("canvas",)),
    message("u1", "claude", agent="a1", conversation="c1"),
    message("u2", "gpt-4.1"),
    message("u2", "gpt-4.1"),
    message("u2", "claude", agent="a1"),
    message("u3", "gpt-4.1"),
    payg("u1", 25.5),
    payg("u6", 3),
]


def test_users_rows_ranks_and_order() -> None:
    rows = export(DataType.USERS, USER_FACTS, users=USERS)
    # u5 was deleted, u7 did not exist yet at the end; u3 (no upsert) and u6 had activity.
    assert [row["user_id"] for row in rows] == ["u1", "u2", "u3", "u4", "u6"]
    assert [row["messages_total_rank"] for row in rows] == ["1", "1", "3", "4", "4"]
    assert [row["messages_chat_rank"] for row in rows] == ["2", "1", "2", "4", "4"]
    first = rows[0]
    assert first["name"] == "Old Name"  # as of the window's end
    assert first["messages_chat"] == "1"
    assert first["messages_projects"] == "1"
    assert first["projects_to_messages"] == '{"p1":1}'
    assert first["assistants_to_messages"] == '{"a1":1}'
    assert first["model_to_messages_total"] == '{"claude":1,"gpt-4.1":2}'
    assert first["action_messages"] == "2"
    assert first["action_messaged"] == "2"
    assert first["action_to_messages"] == '{"canvas":2,"web_search":1}'
    assert first["payg_limit_current"] == "100.000000"
    assert first["payg_consumption_in_period"] == "25.500000"
    assert first["payg_utilization_pct_current"] == "25.50"
    assert first["total_input_tokens"] == "30"
    assert first["no_cache_tokens"] == "21"
    assert first["total_cost_usd"] == "0.000002"  # 1.5 micro-dollars, half-even
    idle = rows[3]
    assert (idle["messages_total"], idle["joined_at"], idle["assistants_to_messages"]) == (
        "0",
        "2025-05-01",
        "{}",
    )
    spender = rows[4]
    assert spender["payg_utilization_pct_current"] == ""  # a limit of 0: undefined
    assert spender["payg_limit_current"] == "0.000000"
    assert rows[2]["payg_limit_current"] == ""  # no limit set (no upsert at all)


def test_users_by_model_split_counts_and_repeat_attributes() -> None:
    rows = export(DataType.USERS, USER_FACTS, group_by="model", users=USERS)
    keyed = [(row["user_id"], row["model"], row["messages_total"]) for row in rows]
    assert keyed == [
        ("u1", "gpt-4.1", "2"),
        ("u2", "gpt-4.1", "2"),
        ("u1", "claude", "1"),
        ("u2", "claude", "1"),
        ("u3", "gpt-4.1", "1"),
        ("u4", "", "0"),
        ("u6", "", "0"),
    ]
    assert {row["payg_consumption_in_period"] for row in rows if row["user_id"] == "u1"} == {
        "25.500000"
    }
    assert "messages_total_rank" not in rows[0]


def test_privacy_hides_names_and_emails() -> None:
    rows = export(DataType.USERS, USER_FACTS, private=True, users=USERS)
    assert "name" not in rows[0]
    assert "email" not in rows[0]
    assert rows[0]["role"] == "member"


AGENTS = history(
    ("a1", 10, {"name": "=Formula agent", "owner_email": "o@example.com"}),
    ("a2", 10, {"name": "Dormant"}),
)
USERS_WITH_DELETION = history(("u1", 10, {}), ("u2", 10, {}), ("u2", 50, {"deleted": True}))


def test_agents_active_users_conversations_and_empty_statistics() -> None:
    facts = [
        message("u1", "gpt-4.1", agent="a1", conversation="c1", prompt=10, completion=1),
        message("u1", "claude", agent="a1", conversation="c1", prompt=30, completion=3),
        message("u2", "gpt-4.1", agent="a1", conversation="c2", prompt=20, completion=2),
        message("u3", "gpt-4.1", agent="a1", prompt=3, completion=0, cached=0, creation=0),
    ]
    rows = export(DataType.ASSISTANTS, facts, agents=AGENTS, users=USERS_WITH_DELETION)
    active, dormant = rows
    assert active["assistant_id"] == "a1"
    assert active["assistant_name"] == "'=Formula agent"  # guarded against spreadsheets
    assert (active["messages"], active["unique_users"], active["active_users"]) == ("4", "3", "2")
    assert active["conversations"] == "2"
    assert active["messages_per_user"] == "2.00"
    assert (active["sum_prompt_tokens"], active["avg_prompt_tokens"]) == ("63", "15.75")
    assert (active["min_prompt_tokens"], active["max_prompt_tokens"]) == ("3", "30")
    assert active["sum_no_cache_tokens"] == str(63 - 6 - 3)
    assert dormant["messages"] == "0"
    assert [
        dormant[name]
        for name in (
            "avg_prompt_tokens",
            "min_prompt_tokens",
            "max_completion_tokens",
            "messages_per_user",
        )
    ] == ["", "", "", ""]


def test_agents_by_model_have_one_row_per_model_and_one_for_the_idle_agent() -> None:
    facts = [
        message("u1", "gpt-4.1", agent="a1"),
        message("u2", "gpt-4.1", agent="a1"),
        message("u1", "claude", agent="a1"),
    ]
    rows = export(DataType.ASSISTANTS, facts, group_by="model", agents=AGENTS)
    assert [
        (row["assistant_id"], row["model"], row["messages"], row["unique_users"]) for row in rows
    ] == [("a1", "gpt-4.1", "2", "2"), ("a1", "claude", "1", "1"), ("a2", "", "0", "0")]
    assert "active_users" not in rows[0]


def test_api_keys_sum_requests_and_cost() -> None:
    keys = history(("k1", 10, {"name": "CI, prod"}), ("k2", 10, {"name": "unused"}))
    facts = [
        api_request("k1", requests=3, cost=0.25),
        api_request("k1", "o3", cost=0.5),
        api_request("k3", requests=2),
    ]
    rows = export(DataType.API_KEYS, facts, byok=False, api_keys=keys)
    assert [(row["api_key_id"], row["requests"], row["total_cost_usd"]) for row in rows] == [
        ("k1", "4", "0.750000"),
        ("k3", "2", "0.000000"),
        ("k2", "0", "0.000000"),
    ]
    assert rows[0]["api_key_name"] == "CI, prod"
    assert "sum_prompt_tokens" not in rows[0]


def test_projects_count_messages() -> None:
    projects = history(("p1", 10, {"name": "Q3"}), ("p2", 10, {"name": "Idle"}))
    rows = export(
        DataType.PROJECTS,
        [message("u1", project="p1")] * 1
        + [message("u2", project="p9")] * 1
        + [message("u3", project="p9")],
        projects=projects,
    )
    assert [(row["project_id"], row["messages"]) for row in rows] == [
        ("p9", "2"),
        ("p1", "1"),
        ("p2", "0"),
    ]


def test_models_rows_only_from_activity_byok_false_first() -> None:
    facts = [
        message("u1", "gpt-4.1", byok=True, source="WEB", deployment="eu-gpt"),
        message("u1", "gpt-4.1", byok=False, source="SLACK"),
        api_request("k1", "gpt-4.1", byok=False, requests=1, cost=1.0),
        message("u2", "claude", provider="anthropic", byok=True, deployment="eu-cl"),
    ]
    rows = export(DataType.MODELS, facts)
    assert [(row["name"], row["bring_your_keys"], row["requests"]) for row in rows] == [
        ("gpt-4.1", "false", "2"),
        ("claude", "true", "1"),
        ("gpt-4.1", "true", "1"),
    ]
    assert rows[0]["total_cost_usd"] == "1.000000"
    by_source = export(DataType.MODELS, facts, group_by="source")
    assert [(row["name"], row["bring_your_keys"], row["source"]) for row in by_source] == [
        ("claude", "true", "WEB"),
        ("gpt-4.1", "false", "API"),
        ("gpt-4.1", "false", "SLACK"),
        ("gpt-4.1", "true", "WEB"),
    ]
    by_deployment = export(DataType.MODELS, facts, group_by="deployment")
    assert [row["deployment"] for row in by_deployment] == ["", "eu-cl", "eu-gpt"]


def test_no_activity_and_no_entities_means_no_rows() -> None:
    assert export(DataType.MODELS, []) == []
    assert export(DataType.USERS, [], users=history(("u5", 10, {"deleted": True}))) == []
