"""Rows of the agents, API keys, projects and models exports."""

from __future__ import annotations

from collections.abc import Callable

from tests.reference import cells, money
from tests.reference.log import OrgLog
from tests.reference.parsing import Call
from tests.reference.window import Window

Row = dict[str, str]
# (sort keys after the main count, cells); the main count sorts descending.
Keyed = tuple[int, tuple[object, ...], Row]


def _in_window(calls: list[Call], window: Window) -> list[Call]:
    return [call for call in calls if window.start <= call.at < window.end]


def _group(calls: list[Call], key: Callable[[Call], str]) -> dict[str, list[Call]]:
    groups: dict[str, list[Call]] = {}
    for call in calls:
        groups.setdefault(key(call), []).append(call)
    return groups


def _token_sums(calls: list[Call], prefix: str) -> Row:
    """Token sums named ``{prefix}prompt_tokens`` ... plus ``no_cache_tokens``."""
    prompt = sum(c.prompt for c in calls)
    cached = sum(c.cached for c in calls)
    creation = sum(c.creation for c in calls)
    return {
        f"{prefix}prompt_tokens": cells.integer(prompt),
        f"{prefix}completion_tokens": cells.integer(sum(c.completion for c in calls)),
        f"{prefix}cached_prompt_tokens": cells.integer(cached),
        f"{prefix}cache_creation_tokens": cells.integer(creation),
        f"{prefix}no_cache_tokens": cells.integer(prompt - cached - creation),
    }


def _stats(values: list[int], name: str) -> Row:
    """sum/avg/min/max of a per-message figure; avg/min/max are empty over no messages."""
    return {
        f"sum_{name}": cells.integer(sum(values)),
        f"avg_{name}": cells.ratio(sum(values), len(values)),
        f"min_{name}": cells.optional_int(min(values, default=None)),
        f"max_{name}": cells.optional_int(max(values, default=None)),
    }


def _by_subgroup(calls: list[Call], group_by: str | None) -> list[tuple[str, list[Call]]]:
    """One (value, calls) per subgroup; an entity without calls keeps one empty row."""
    if group_by is None:
        return [("", calls)]
    groups = _group(calls, lambda c: str(getattr(c, group_by)))
    return sorted(groups.items()) or [("", [])]


def _attrs(org: OrgLog, kind: str, entity_id: str, window: Window) -> dict[str, str]:
    upsert = org.as_of(kind, entity_id, window.as_of)
    return dict(upsert.attrs) if upsert is not None else {}


def agent_rows(org: OrgLog, window: Window, group_by: str | None) -> list[Keyed]:
    calls = _group(
        [m for m in _in_window(org.messages, window) if m.assistant_id is not None],
        lambda m: m.assistant_id or "",
    )
    rows: list[Keyed] = []
    for agent_id in org.existing_at("agent_upserted", window.as_of) | set(calls):
        attrs = _attrs(org, "agent_upserted", agent_id, window)
        entity = {
            "assistant_id": agent_id,
            "assistant_name": attrs.get("name", ""),
            "assistant_description": attrs.get("description", ""),
            "assistant_url": attrs.get("url", ""),
            "assistant_owner_id": attrs.get("owner_id", ""),
            "assistant_owner_email": attrs.get("owner_email", ""),
        }
        for value, subset in _by_subgroup(calls.get(agent_id, []), group_by):
            senders = {m.owner for m in subset}
            active = {u for u in senders if not org.deleted_at("user_upserted", u, window.as_of)}
            conversations = {m.conversation_id for m in subset if m.conversation_id is not None}
            row = entity | {
                "messages": cells.integer(len(subset)),
                "unique_users": cells.integer(len(senders)),
                "active_users": cells.integer(len(active)),
                "conversations": cells.integer(len(conversations)),
                "messages_per_user": cells.ratio(len(subset), len(active)),
                "sum_cached_prompt_tokens": cells.integer(sum(m.cached for m in subset)),
                "sum_cache_creation_tokens": cells.integer(sum(m.creation for m in subset)),
                "sum_no_cache_tokens": cells.integer(
                    sum(m.prompt - m.cached - m.creation for m in subset)
                ),
            }
            row |= _stats([m.prompt for m in subset], "prompt_tokens")
            row |= _stats([m.completion for m in subset], "completion_tokens")
            if group_by is not None:
                row[group_by] = value
            rows.append((len(subset), (agent_id, value), row))
    return rows


def api_key_rows(org: OrgLog, window: Window, group_by: str | None) -> list[Keyed]:
    calls = _group(_in_window(org.api_requests, window), lambda c: c.owner)
    rows: list[Keyed] = []
    for key_id in org.existing_at("api_key_upserted", window.as_of) | set(calls):
        attrs = _attrs(org, "api_key_upserted", key_id, window)
        for value, subset in _by_subgroup(calls.get(key_id, []), group_by):
            requests = sum(c.requests for c in subset)
            row = {
                "api_key_id": key_id,
                "api_key_name": attrs.get("name", ""),
                "requests": cells.integer(requests),
                "total_cost_usd": cells.money(money.total(c.cost_nano for c in subset)),
            } | _token_sums(subset, "sum_")
            # API keys name three of their token columns without the ``sum_`` prefix.
            for name in ("cached_prompt_tokens", "cache_creation_tokens", "no_cache_tokens"):
                row[name] = row.pop(f"sum_{name}")
            if group_by is not None:
                row[group_by] = value
            rows.append((requests, (key_id, value), row))
    return rows


def project_rows(org: OrgLog, window: Window, group_by: str | None) -> list[Keyed]:
    del group_by  # projects have no subgroups
    calls = _group(
        [m for m in _in_window(org.messages, window) if m.project_id is not None],
        lambda m: m.project_id or "",
    )
    rows: list[Keyed] = []
    for project_id in org.existing_at("project_upserted", window.as_of) | set(calls):
        attrs = _attrs(org, "project_upserted", project_id, window)
        count = len(calls.get(project_id, []))
        row = {
            "project_id": project_id,
            "project_name": attrs.get("name", ""),
            "project_owner_id": attrs.get("owner_id", ""),
            "project_owner_email": attrs.get("owner_email", ""),
            "messages": cells.integer(count),
        }
        rows.append((count, (project_id,), row))
    return rows


def model_rows(org: OrgLog, window: Window, group_by: str | None) -> list[Keyed]:
    calls = _in_window(org.messages, window) + _in_window(org.api_requests, window)
    groups: dict[tuple[str, str, bool, str], list[Call]] = {}
    for call in calls:
        value = "" if group_by is None else str(getattr(call, group_by))
        groups.setdefault((call.model, call.provider, call.byok, value), []).append(call)
    rows: list[Keyed] = []
    for (model, provider, byok, value), subset in groups.items():
        requests = sum(c.requests for c in subset)
        row = {
            "name": model,
            "provider": provider,
            "bring_your_keys": cells.boolean(byok),
            "requests": cells.integer(requests),
            "total_cost_usd": cells.money(money.total(c.cost_nano for c in subset)),
        } | _token_sums(subset, "sum_")
        row["no_cache_tokens"] = row.pop("sum_no_cache_tokens")
        if group_by is not None:
            row[group_by] = value
        rows.append((requests, (model, provider, byok, value), row))
    return rows
