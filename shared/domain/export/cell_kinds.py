"""The kind of every export column (contract §5, "Values", and each type's table): what a
cell holds, which the typed formats (Parquet, NDJSON) follow. Columns not listed are text
(ids, names, the subgroup columns ``model``, ``source``, ``deployment``)."""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class CellKind(StrEnum):
    TEXT = "text"
    INTEGER = "integer"
    MONEY = "money"
    AVERAGE = "average"
    PERCENTAGE = "percentage"
    BOOLEAN = "boolean"
    DATE = "date"
    JSON = "JSON"


_COLUMNS: Final[dict[CellKind, tuple[str, ...]]] = {
    CellKind.DATE: ("period_start", "period_end", "bucket_start", "bucket_end", "joined_at"),
    CellKind.MONEY: ("payg_limit_current", "payg_consumption_in_period", "total_cost_usd"),
    CellKind.PERCENTAGE: ("payg_utilization_pct_current",),
    CellKind.AVERAGE: ("messages_per_user", "avg_prompt_tokens", "avg_completion_tokens"),
    CellKind.BOOLEAN: ("bring_your_keys",),
    CellKind.JSON: (
        "assistants_to_messages", "projects_to_messages", "model_to_messages_total",
        "action_to_messages",
    ),
    CellKind.INTEGER: (
        "messages_total", "messages_total_rank", "messages_chat", "messages_chat_rank",
        "messages_assistants", "messages_assistants_rank", "assistants_messaged",
        "messages_projects", "messages_projects_rank", "projects_messaged", "action_messages",
        "action_messaged", "total_input_tokens", "total_output_tokens", "cached_prompt_tokens",
        "cache_creation_tokens", "no_cache_tokens", "messages", "unique_users", "active_users",
        "conversations", "sum_prompt_tokens", "min_prompt_tokens", "max_prompt_tokens",
        "sum_completion_tokens", "min_completion_tokens", "max_completion_tokens",
        "sum_cached_prompt_tokens", "sum_cache_creation_tokens", "sum_no_cache_tokens",
        "requests",
    ),
}  # fmt: skip
_KIND_OF: Final = {column: kind for kind, columns in _COLUMNS.items() for column in columns}


def cell_kind(column: str) -> CellKind:
    """The kind of the export column ``column`` (text unless listed)."""
    return _KIND_OF.get(column, CellKind.TEXT)
