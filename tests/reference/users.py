"""Rows of the users export, computed from the window's events one user at a time."""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter

from tests.reference import cells, money
from tests.reference.log import OrgLog
from tests.reference.parsing import Call
from tests.reference.window import Window

Row = dict[str, str]
_RANKED = ("messages_total", "messages_chat", "messages_assistants", "messages_projects")


def _message_columns(messages: list[Call]) -> tuple[Row, int]:
    """Counts, JSON breakdowns and token sums of some messages; also messages_total."""
    by_assistant = Counter(m.assistant_id for m in messages if m.assistant_id is not None)
    by_project = Counter(m.project_id for m in messages if m.project_id is not None)
    by_action: Counter[str] = Counter()
    for message in messages:
        by_action.update(message.actions)
    prompt = sum(m.prompt for m in messages)
    cached = sum(m.cached for m in messages)
    creation = sum(m.creation for m in messages)
    row = {
        "messages_total": cells.integer(len(messages)),
        "messages_chat": cells.integer(
            sum(1 for m in messages if m.assistant_id is None and m.project_id is None)
        ),
        "messages_assistants": cells.integer(sum(by_assistant.values())),
        "assistants_messaged": cells.integer(len(by_assistant)),
        "assistants_to_messages": cells.json_counts(by_assistant),
        "messages_projects": cells.integer(sum(by_project.values())),
        "projects_messaged": cells.integer(len(by_project)),
        "projects_to_messages": cells.json_counts(by_project),
        "model_to_messages_total": cells.json_counts(Counter(m.model for m in messages)),
        "action_messages": cells.integer(sum(1 for m in messages if m.actions)),
        "action_messaged": cells.integer(len(by_action)),
        "action_to_messages": cells.json_counts(by_action),
        "total_input_tokens": cells.integer(prompt),
        "total_output_tokens": cells.integer(sum(m.completion for m in messages)),
        "cached_prompt_tokens": cells.integer(cached),
        "cache_creation_tokens": cells.integer(creation),
        "no_cache_tokens": cells.integer(prompt - cached - creation),
        "total_cost_usd": cells.money(money.total(m.cost_nano for m in messages)),
    }
    return row, len(messages)


def _user_columns(org: OrgLog, user_id: str, window: Window, consumption: int) -> Row:
    upsert = org.as_of("user_upserted", user_id, window.as_of)
    attrs = upsert.attrs if upsert is not None else {}
    limit: int | None = attrs.get("payg_limit")  # nano-dollars
    return {
        "user_id": user_id,
        "name": attrs.get("name", ""),
        "email": attrs.get("email", ""),
        "role": attrs.get("role", ""),
        "joined_at": attrs.get("joined_at", ""),
        "department": attrs.get("department", ""),
        "company_name": attrs.get("company_name", ""),
        "license_type": attrs.get("license_type", ""),
        "payg_limit_current": cells.money(limit),
        "payg_consumption_in_period": cells.money(consumption),
        "payg_utilization_pct_current": (
            "" if limit is None else cells.ratio(consumption, limit, scale=100)
        ),
    }


def user_rows(org: OrgLog, window: Window, group_by: str | None) -> list[tuple[int, str, str, Row]]:
    """(sort count, user id, subgroup value, cells) for every row of the export."""
    messages: dict[str, list[Call]] = {}
    for message in org.messages:
        if window.start <= message.at < window.end:
            messages.setdefault(message.owner, []).append(message)
    payg: dict[str, list[int]] = {}
    for event in org.payg:
        if window.start <= event.at < window.end:
            payg.setdefault(event.user_id, []).append(event.amount_nano)
    consumption = {user_id: money.total(amounts) for user_id, amounts in payg.items()}
    user_ids = org.existing_at("user_upserted", window.as_of) | set(messages) | set(consumption)

    rows: list[tuple[int, str, str, Row]] = []
    for user_id in user_ids:
        user = _user_columns(org, user_id, window, consumption.get(user_id, 0))
        own = messages.get(user_id, [])
        if group_by is None:
            counts, total = _message_columns(own)
            rows.append((total, user_id, "", user | counts))
            continue
        by_model: dict[str, list[Call]] = {}
        for message in own:
            by_model.setdefault(message.model, []).append(message)
        for model, subset in sorted(by_model.items()) or [("", [])]:
            counts, total = _message_columns(subset)
            rows.append((total, user_id, model, user | counts | {"model": model}))
    if group_by is None:
        _add_ranks([row for *_, row in rows])
    return rows


def _add_ranks(rows: list[Row]) -> None:
    """Competition ranks (1, 2, 2, 4) of each count, descending, over all rows."""
    for column in _RANKED:
        ascending = sorted(int(row[column]) for row in rows)
        for row in rows:
            greater = len(ascending) - bisect_right(ascending, int(row[column]))
            row[f"{column}_rank"] = str(1 + greater)
