"""Column lists of contract §5, copied by hand from ``seeds/002`` (names and order)."""

from __future__ import annotations

HEAD = ["period_start", "period_end", "org_id"]

BASE: dict[str, list[str]] = {
    "users": [
        "user_id", "name", "email", "role", "joined_at", "department", "company_name",
        "license_type", "payg_limit_current", "payg_consumption_in_period",
        "payg_utilization_pct_current", "messages_total", "messages_total_rank",
        "messages_chat", "messages_chat_rank", "messages_assistants",
        "messages_assistants_rank", "assistants_messaged", "assistants_to_messages",
        "messages_projects", "messages_projects_rank", "projects_messaged",
        "projects_to_messages", "model_to_messages_total", "action_messages",
        "action_messaged", "action_to_messages",
    ],
    "assistants": [
        "assistant_id", "assistant_name", "assistant_description", "assistant_url",
        "assistant_owner_id", "assistant_owner_email", "messages", "unique_users",
        "active_users", "conversations", "messages_per_user",
    ],
    "api_keys": ["api_key_id", "api_key_name", "requests", "total_cost_usd"],
    "projects": [
        "project_id", "project_name", "project_owner_id", "project_owner_email", "messages",
    ],
    "models": ["name", "provider", "bring_your_keys", "requests"],
}  # fmt: skip

BYOK: dict[str, list[str]] = {
    "users": [
        "total_input_tokens", "total_output_tokens", "cached_prompt_tokens",
        "cache_creation_tokens", "no_cache_tokens", "total_cost_usd",
    ],
    "assistants": [
        "sum_prompt_tokens", "avg_prompt_tokens", "min_prompt_tokens", "max_prompt_tokens",
        "sum_completion_tokens", "avg_completion_tokens", "min_completion_tokens",
        "max_completion_tokens", "sum_cached_prompt_tokens", "sum_cache_creation_tokens",
        "sum_no_cache_tokens",
    ],
    "api_keys": [
        "sum_prompt_tokens", "sum_completion_tokens", "cached_prompt_tokens",
        "cache_creation_tokens", "no_cache_tokens",
    ],
    "projects": [],
    "models": [
        "sum_prompt_tokens", "sum_completion_tokens", "sum_cached_prompt_tokens",
        "sum_cache_creation_tokens", "no_cache_tokens", "total_cost_usd",
    ],
}  # fmt: skip

PRIVATE: dict[str, set[str]] = {
    "users": {"name", "email"},
    "assistants": {"assistant_owner_email"},
    "projects": {"project_owner_email"},
}

# Columns a subgrouped export leaves out (contract §5).
_USERS_BY_MODEL_OMITTED = {
    "messages_total_rank", "messages_chat_rank", "messages_assistants_rank",
    "messages_projects_rank", "assistants_to_messages", "projects_to_messages",
    "model_to_messages_total", "action_messages", "action_messaged", "action_to_messages",
    "projects_messaged",
}  # fmt: skip
_AGENTS_BY_MODEL_OMITTED = {"active_users", "conversations", "messages_per_user"}

# The column a subgroup column follows.
SUBGROUP_AFTER = {
    "users": "user_id",
    "assistants": "assistant_id",
    "api_keys": "api_key_id",
    "models": "bring_your_keys",
}


def header(data_type: str, *, byok: bool, user_level_data: bool, group_by: str | None) -> list[str]:
    columns = HEAD + BASE[data_type] + (BYOK[data_type] if byok else [])
    if not user_level_data:
        columns = [c for c in columns if c not in PRIVATE.get(data_type, set())]
    if group_by is None:
        return columns
    omitted: set[str] = set()
    if data_type == "users":
        omitted = _USERS_BY_MODEL_OMITTED
    elif data_type == "assistants":
        omitted = _AGENTS_BY_MODEL_OMITTED
    columns = [c for c in columns if c not in omitted]
    at = columns.index(SUBGROUP_AFTER[data_type]) + 1
    return [*columns[:at], group_by, *columns[at:]]
