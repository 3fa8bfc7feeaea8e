"""Column specs of contract §5 (docs/contract.md): names and order exactly as in the
reference documentation's tables (kept verbatim in tests/reference/seed_columns.md; both
are checked by tests), the BYOK extras, the privacy omissions and the subgroup rules."""

from __future__ import annotations

from typing import Final

from shared.contracts.requests import DataType

HEAD: Final = ("period_start", "period_end", "org_id")

BASE: Final[dict[DataType, tuple[str, ...]]] = {
    DataType.USERS: (
        "user_id", "name", "email", "role", "joined_at", "department", "company_name",
        "license_type", "payg_limit_current", "payg_consumption_in_period",
        "payg_utilization_pct_current", "messages_total", "messages_total_rank",
        "messages_chat", "messages_chat_rank", "messages_assistants",
        "messages_assistants_rank", "assistants_messaged", "assistants_to_messages",
        "messages_projects", "messages_projects_rank", "projects_messaged",
        "projects_to_messages", "model_to_messages_total", "action_messages",
        "action_messaged", "action_to_messages",
    ),
    DataType.ASSISTANTS: (
        "assistant_id", "assistant_name", "assistant_description", "assistant_url",
        "assistant_owner_id", "assistant_owner_email", "messages", "unique_users",
        "active_users", "conversations", "messages_per_user",
    ),
    DataType.API_KEYS: ("api_key_id", "api_key_name", "requests", "total_cost_usd"),
    DataType.PROJECTS: (
        "project_id", "project_name", "project_owner_id", "project_owner_email", "messages",
    ),
    DataType.MODELS: ("name", "provider", "bring_your_keys", "requests"),
}  # fmt: skip

BYOK: Final[dict[DataType, tuple[str, ...]]] = {
    DataType.USERS: (
        "total_input_tokens", "total_output_tokens", "cached_prompt_tokens",
        "cache_creation_tokens", "no_cache_tokens", "total_cost_usd",
    ),
    DataType.ASSISTANTS: (
        "sum_prompt_tokens", "avg_prompt_tokens", "min_prompt_tokens", "max_prompt_tokens",
        "sum_completion_tokens", "avg_completion_tokens", "min_completion_tokens",
        "max_completion_tokens", "sum_cached_prompt_tokens", "sum_cache_creation_tokens",
        "sum_no_cache_tokens",
    ),
    DataType.API_KEYS: (
        "sum_prompt_tokens", "sum_completion_tokens", "cached_prompt_tokens",
        "cache_creation_tokens", "no_cache_tokens",
    ),
    DataType.PROJECTS: (),
    DataType.MODELS: (
        "sum_prompt_tokens", "sum_completion_tokens", "sum_cached_prompt_tokens",
        "sum_cache_creation_tokens", "no_cache_tokens", "total_cost_usd",
    ),
}  # fmt: skip

#: Left out when the workspace has user-level data disabled.
PRIVATE: Final[dict[DataType, frozenset[str]]] = {
    DataType.USERS: frozenset({"name", "email"}),
    DataType.ASSISTANTS: frozenset({"assistant_owner_email"}),
    DataType.PROJECTS: frozenset({"project_owner_email"}),
}

#: Left out of subgrouped exports: they describe the whole entity, not one subgroup.
OMITTED_WHEN_GROUPED: Final[dict[DataType, frozenset[str]]] = {
    DataType.USERS: frozenset({
        "messages_total_rank", "messages_chat_rank", "messages_assistants_rank",
        "messages_projects_rank", "assistants_to_messages", "projects_to_messages",
        "model_to_messages_total", "action_messages", "action_messaged",
        "action_to_messages", "projects_messaged",
    }),
    DataType.ASSISTANTS: frozenset({"active_users", "conversations", "messages_per_user"}),
}  # fmt: skip

#: The column the subgroup column follows.
SUBGROUP_AFTER: Final[dict[DataType, str]] = {
    DataType.USERS: "user_id",
    DataType.ASSISTANTS: "assistant_id",
    DataType.API_KEYS: "api_key_id",
    DataType.MODELS: "bring_your_keys",
}


def header(
    data_type: DataType, *, byok: bool, user_level_data: bool, group_by: str | None
) -> list[str]:
    """The header row of one export, in contract order."""
    columns = [*HEAD, *BASE[data_type], *(BYOK[data_type] if byok else ())]
    if not user_level_data:
        private = PRIVATE.get(data_type, frozenset())
        columns = [column for column in columns if column not in private]
    if group_by is None:
        return columns
    omitted = OMITTED_WHEN_GROUPED.get(data_type, frozenset())
    columns = [column for column in columns if column not in omitted]
    at = columns.index(SUBGROUP_AFTER[data_type]) + 1
    return [*columns[:at], group_by, *columns[at:]]
