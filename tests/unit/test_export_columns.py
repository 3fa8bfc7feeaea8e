"""Column specs of contract §5 (names and order of the reference documentation)."""

from __future__ import annotations

import pytest

from shared.contracts.requests import DataType
from shared.domain.export.columns import header

HEAD = ["period_start", "period_end", "org_id"]


def test_users_base_columns_in_documented_order() -> None:
    assert header(DataType.USERS, byok=False, user_level_data=True, group_by=None) == [
        *HEAD, "user_id", "name", "email", "role", "joined_at", "department", "company_name",
        "license_type", "payg_limit_current", "payg_consumption_in_period",
        "payg_utilization_pct_current", "messages_total", "messages_total_rank",
        "messages_chat", "messages_chat_rank", "messages_assistants",
        "messages_assistants_rank", "assistants_messaged", "assistants_to_messages",
        "messages_projects", "messages_projects_rank", "projects_messaged",
        "projects_to_messages", "model_to_messages_total", "action_messages",
        "action_messaged", "action_to_messages",
    ]  # fmt: skip


def test_byok_columns_come_last() -> None:
    users = header(DataType.USERS, byok=True, user_level_data=True, group_by=None)
    assert users[-6:] == [
        "total_input_tokens",
        "total_output_tokens",
        "cached_prompt_tokens",
        "cache_creation_tokens",
        "no_cache_tokens",
        "total_cost_usd",
    ]
    keys = header(DataType.API_KEYS, byok=True, user_level_data=True, group_by=None)
    assert keys == [
        *HEAD,
        "api_key_id",
        "api_key_name",
        "requests",
        "total_cost_usd",
        "sum_prompt_tokens",
        "sum_completion_tokens",
        "cached_prompt_tokens",
        "cache_creation_tokens",
        "no_cache_tokens",
    ]
    models = header(DataType.MODELS, byok=False, user_level_data=True, group_by=None)
    assert models == [*HEAD, "name", "provider", "bring_your_keys", "requests"]
    agents = header(DataType.ASSISTANTS, byok=True, user_level_data=True, group_by=None)
    assert agents[-11:][0] == "sum_prompt_tokens"
    assert agents[-1] == "sum_no_cache_tokens"


@pytest.mark.parametrize(
    ("data_type", "private"),
    [
        (DataType.USERS, {"name", "email"}),
        (DataType.ASSISTANTS, {"assistant_owner_email"}),
        (DataType.PROJECTS, {"project_owner_email"}),
        (DataType.API_KEYS, set()),
        (DataType.MODELS, set()),
    ],
)
def test_privacy_leaves_out_identifying_columns(data_type: DataType, private: set[str]) -> None:
    public = header(data_type, byok=True, user_level_data=True, group_by=None)
    hidden = header(data_type, byok=True, user_level_data=False, group_by=None)
    assert set(public) - set(hidden) == private
    assert [column for column in public if column not in private] == hidden


def test_users_by_model_omit_ranks_json_actions_and_projects_messaged() -> None:
    columns = header(DataType.USERS, byok=False, user_level_data=True, group_by="model")
    assert columns[3:5] == ["user_id", "model"]
    assert not [column for column in columns if column.endswith(("_rank", "_to_messages"))]
    assert "model_to_messages_total" not in columns
    assert not {"action_messages", "action_messaged", "projects_messaged"} & set(columns)
    assert "assistants_messaged" in columns


def test_agents_by_model_omit_agent_level_kpis() -> None:
    columns = header(DataType.ASSISTANTS, byok=False, user_level_data=True, group_by="model")
    assert columns[3:5] == ["assistant_id", "model"]
    assert not {"active_users", "conversations", "messages_per_user"} & set(columns)
    assert "unique_users" in columns


@pytest.mark.parametrize("group_by", ["source", "deployment"])
def test_models_subgroup_follows_bring_your_keys(group_by: str) -> None:
    columns = header(DataType.MODELS, byok=True, user_level_data=True, group_by=group_by)
    assert columns[3:8] == ["name", "provider", "bring_your_keys", group_by, "requests"]


def test_api_keys_subgroup_follows_the_id() -> None:
    columns = header(DataType.API_KEYS, byok=False, user_level_data=True, group_by="model")
    assert columns == [*HEAD, "api_key_id", "model", "api_key_name", "requests", "total_cost_usd"]
