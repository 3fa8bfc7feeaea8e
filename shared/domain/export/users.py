"""Rows of the users export: one per user (or per user and model), from the merged
aggregate's per-user totals (or, grouped by model, its per-(user, model) stats), the
payg sums and the users' attributes."""

from __future__ import annotations

from bisect import bisect_right
from typing import Any

from shared.domain.aggregate import (
    T_BY_MODEL,
    U_ACTION_MESSAGES,
    U_ASSISTANTS,
    U_BY_ACTION,
    U_BY_ASSISTANT,
    U_BY_PROJECT,
    U_CACHED,
    U_CHAT,
    U_COMPLETION,
    U_COST,
    U_CREATION,
    U_PROJECTS,
    U_PROMPT,
    U_TOTAL,
    collapse_users,
)
from shared.domain.export import cells
from shared.domain.export.context import (
    ExportInputs,
    Row,
    RowKey,
    attributes_at,
    existing_at,
)

_RANKED = (
    ("messages_total", U_TOTAL),
    ("messages_chat", U_CHAT),
    ("messages_assistants", U_ASSISTANTS),
    ("messages_projects", U_PROJECTS),
)
_TEXT_ATTRIBUTES = (
    "name",
    "email",
    "role",
    "joined_at",
    "department",
    "company_name",
    "license_type",
)


def _empty_stats() -> list[Any]:
    return [0] * (U_COST + 1) + [{}, {}, {}, {}]


class UserRows:
    """Row source of the users export (see :class:`~.context.RowSource`)."""

    def __init__(self, inputs: ExportInputs) -> None:
        self._inputs = inputs
        self._grouped = inputs.group_by is not None
        self._history = inputs.history("users")
        aggregate = inputs.aggregate
        # Ungrouped rows need per-user totals only: read as such (the exporter asks for
        # the ``user_totals`` part), or collapsed here from per-(user, model) stats.
        self._user_totals = (
            {} if self._grouped else aggregate.user_totals or collapse_users(aggregate.users)
        )
        active = aggregate.users if self._grouped else self._user_totals
        # Users with activity (messages or extra usage) plus users existing at the end.
        self._user_ids = (
            existing_at(self._history, inputs.end_ms) | set(active) | set(aggregate.payg)
        )
        self._sorted_counts: dict[int, list[int]] = {}
        if not self._grouped:
            empty = _empty_stats()
            totals = [self._user_totals.get(user_id, empty) for user_id in self._user_ids]
            for _, index in _RANKED:
                self._sorted_counts[index] = sorted(each[index] for each in totals)

    def keys(self) -> list[RowKey]:
        if not self._grouped:
            totals, empty = self._user_totals, _empty_stats()
            return [
                (totals.get(user_id, empty)[U_TOTAL], (user_id, "")) for user_id in self._user_ids
            ]
        by_user = self._inputs.aggregate.users
        keys: list[RowKey] = []
        for user_id in self._user_ids:
            models = by_user.get(user_id) or {"": _empty_stats()}
            keys.extend((stats[U_TOTAL], (user_id, model)) for model, stats in models.items())
        return keys

    def row(self, key: RowKey) -> Row:
        user_id, model = key[1]
        if self._grouped:
            by_model = self._inputs.aggregate.users.get(user_id, {})
            stats = by_model.get(model) or _empty_stats()
        else:
            stats = self._user_totals.get(user_id) or _empty_stats()
        row = self._user_cells(user_id) | _message_cells(stats)
        if self._grouped:
            row["model"] = model
        else:
            row["model_to_messages_total"] = cells.json_counts(stats[T_BY_MODEL])
            for column, index in _RANKED:
                ordered = self._sorted_counts[index]
                greater = len(ordered) - bisect_right(ordered, stats[index])
                row[f"{column}_rank"] = cells.integer(1 + greater)
        return row

    def _user_cells(self, user_id: str) -> Row:
        attributes = attributes_at(self._history, user_id, self._inputs.end_ms)
        limit: int | None = attributes.get("payg_limit")
        consumption: int = self._inputs.aggregate.payg.get(user_id, 0)
        row = {name: str(attributes.get(name) or "") for name in _TEXT_ATTRIBUTES}
        row["user_id"] = user_id
        row["payg_limit_current"] = cells.money(limit)
        row["payg_consumption_in_period"] = cells.money(consumption)
        row["payg_utilization_pct_current"] = (
            "" if limit is None else cells.ratio(consumption, limit, scale=100)
        )
        return row


def _message_cells(stats: list[Any]) -> Row:
    by_assistant: dict[str, int] = stats[U_BY_ASSISTANT]
    by_project: dict[str, int] = stats[U_BY_PROJECT]
    by_action: dict[str, int] = stats[U_BY_ACTION]
    prompt, cached, creation = stats[U_PROMPT], stats[U_CACHED], stats[U_CREATION]
    return {
        "messages_total": cells.integer(stats[U_TOTAL]),
        "messages_chat": cells.integer(stats[U_CHAT]),
        "messages_assistants": cells.integer(stats[U_ASSISTANTS]),
        "assistants_messaged": cells.integer(len(by_assistant)),
        "assistants_to_messages": cells.json_counts(by_assistant),
        "messages_projects": cells.integer(stats[U_PROJECTS]),
        "projects_messaged": cells.integer(len(by_project)),
        "projects_to_messages": cells.json_counts(by_project),
        "action_messages": cells.integer(stats[U_ACTION_MESSAGES]),
        "action_messaged": cells.integer(len(by_action)),
        "action_to_messages": cells.json_counts(by_action),
        "total_input_tokens": cells.integer(prompt),
        "total_output_tokens": cells.integer(stats[U_COMPLETION]),
        "cached_prompt_tokens": cells.integer(cached),
        "cache_creation_tokens": cells.integer(creation),
        "no_cache_tokens": cells.integer(prompt - cached - creation),
        "total_cost_usd": cells.money(stats[U_COST]),
    }
