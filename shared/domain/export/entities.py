"""Rows of the agents, API keys and projects exports: one per entity that existed at the
window's end or had activity in it (per entity and model when subgrouped)."""

from __future__ import annotations

from typing import Any

from shared.domain.aggregate import (
    A_CACHED,
    A_COMPLETION,
    A_COMPLETION_MAX,
    A_COMPLETION_MIN,
    A_CREATION,
    A_MESSAGES,
    A_PROMPT,
    A_PROMPT_MAX,
    A_PROMPT_MIN,
    A_USERS,
    K_CACHED,
    K_COMPLETION,
    K_COST,
    K_CREATION,
    K_PROMPT,
    K_REQUESTS,
    merge_agent_stats,
)
from shared.domain.export import cells
from shared.domain.export.context import (
    ExportInputs,
    Row,
    RowKey,
    attributes_at,
    deleted_at,
    existing_at,
)


def _subgroups(by_model: dict[str, Any]) -> list[str]:
    """Subgroup values of one entity; an entity without activity keeps one empty row."""
    return list(by_model) or [""]


class AgentRows:
    """Row source of the agents (assistants) export."""

    def __init__(self, inputs: ExportInputs) -> None:
        self._inputs = inputs
        self._grouped = inputs.group_by is not None
        self._agents = inputs.history("agents")
        self._users = inputs.history("users")
        self._ids = existing_at(self._agents, inputs.end_ms) | set(inputs.aggregate.agents)

    def keys(self) -> list[RowKey]:
        by_agent = self._inputs.aggregate.agents
        keys: list[RowKey] = []
        for agent_id in self._ids:
            by_model = by_agent.get(agent_id, {})
            if self._grouped:
                keys.extend(
                    (by_model[model][A_MESSAGES] if model in by_model else 0, (agent_id, model))
                    for model in _subgroups(by_model)
                )
            else:
                keys.append((sum(stats[A_MESSAGES] for stats in by_model.values()), (agent_id, "")))
        return keys

    def row(self, key: RowKey) -> Row:
        agent_id, model = key[1]
        by_model = self._inputs.aggregate.agents.get(agent_id, {})
        stats: list[Any] | None
        if self._grouped:
            stats = by_model.get(model)
        else:
            stats = None
            for model_stats in by_model.values():
                if stats is None:
                    stats = [*model_stats[:A_USERS], set(model_stats[A_USERS])]
                else:
                    merge_agent_stats(stats, model_stats)
        attributes = attributes_at(self._agents, agent_id, self._inputs.end_ms)
        row = {
            "assistant_id": agent_id,
            "assistant_name": str(attributes.get("name") or ""),
            "assistant_description": str(attributes.get("description") or ""),
            "assistant_url": str(attributes.get("url") or ""),
            "assistant_owner_id": str(attributes.get("owner_id") or ""),
            "assistant_owner_email": str(attributes.get("owner_email") or ""),
        } | _agent_stats_cells(stats)
        if self._grouped:
            row["model"] = model
        else:
            senders: set[str] = stats[A_USERS] if stats is not None else set()
            end_ms = self._inputs.end_ms
            active = sum(1 for user in senders if not deleted_at(self._users, user, end_ms))
            messages = stats[A_MESSAGES] if stats is not None else 0
            conversations = self._inputs.aggregate.agent_conversations.get(agent_id, ())
            row["active_users"] = cells.integer(active)
            row["conversations"] = cells.integer(len(conversations))
            row["messages_per_user"] = cells.ratio(messages, active)
        return row


def _agent_stats_cells(stats: list[Any] | None) -> Row:
    """Counts and token statistics of an agent's messages (None: no messages)."""
    if stats is None:
        stats = [0, 0, None, None, 0, None, None, 0, 0, set()]
    messages, prompt = stats[A_MESSAGES], stats[A_PROMPT]
    completion, cached, creation = stats[A_COMPLETION], stats[A_CACHED], stats[A_CREATION]
    return {
        "messages": cells.integer(messages),
        "unique_users": cells.integer(len(stats[A_USERS])),
        "sum_prompt_tokens": cells.integer(prompt),
        "avg_prompt_tokens": cells.ratio(prompt, messages),
        "min_prompt_tokens": cells.optional_integer(stats[A_PROMPT_MIN]),
        "max_prompt_tokens": cells.optional_integer(stats[A_PROMPT_MAX]),
        "sum_completion_tokens": cells.integer(completion),
        "avg_completion_tokens": cells.ratio(completion, messages),
        "min_completion_tokens": cells.optional_integer(stats[A_COMPLETION_MIN]),
        "max_completion_tokens": cells.optional_integer(stats[A_COMPLETION_MAX]),
        "sum_cached_prompt_tokens": cells.integer(cached),
        "sum_cache_creation_tokens": cells.integer(creation),
        "sum_no_cache_tokens": cells.integer(prompt - cached - creation),
    }


class ApiKeyRows:
    """Row source of the API keys export."""

    def __init__(self, inputs: ExportInputs) -> None:
        self._inputs = inputs
        self._grouped = inputs.group_by is not None
        self._keys = inputs.history("api_keys")
        self._ids = existing_at(self._keys, inputs.end_ms) | set(inputs.aggregate.api_keys)

    def keys(self) -> list[RowKey]:
        by_key = self._inputs.aggregate.api_keys
        keys: list[RowKey] = []
        for key_id in self._ids:
            by_model = by_key.get(key_id, {})
            if self._grouped:
                keys.extend(
                    (by_model[model][K_REQUESTS] if model in by_model else 0, (key_id, model))
                    for model in _subgroups(by_model)
                )
            else:
                keys.append((sum(stats[K_REQUESTS] for stats in by_model.values()), (key_id, "")))
        return keys

    def row(self, key: RowKey) -> Row:
        key_id, model = key[1]
        by_model = self._inputs.aggregate.api_keys.get(key_id, {})
        chosen = (
            [by_model[model]]
            if model in by_model
            else []
            if self._grouped
            else list(by_model.values())
        )
        totals = [sum(stats[index] for stats in chosen) for index in range(K_CREATION + 1)]
        prompt, cached, creation = totals[K_PROMPT], totals[K_CACHED], totals[K_CREATION]
        attributes = attributes_at(self._keys, key_id, self._inputs.end_ms)
        row = {
            "api_key_id": key_id,
            "api_key_name": str(attributes.get("name") or ""),
            "requests": cells.integer(totals[K_REQUESTS]),
            "total_cost_usd": cells.money(totals[K_COST]),
            "sum_prompt_tokens": cells.integer(prompt),
            "sum_completion_tokens": cells.integer(totals[K_COMPLETION]),
            "cached_prompt_tokens": cells.integer(cached),
            "cache_creation_tokens": cells.integer(creation),
            "no_cache_tokens": cells.integer(prompt - cached - creation),
        }
        if self._grouped:
            row["model"] = model
        return row


class ProjectRows:
    """Row source of the projects export (projects have no subgroups)."""

    def __init__(self, inputs: ExportInputs) -> None:
        self._inputs = inputs
        self._projects = inputs.history("projects")
        self._ids = existing_at(self._projects, inputs.end_ms) | set(inputs.aggregate.projects)

    def keys(self) -> list[RowKey]:
        counts = self._inputs.aggregate.projects
        return [(counts.get(project_id, 0), (project_id,)) for project_id in self._ids]

    def row(self, key: RowKey) -> Row:
        (project_id,) = key[1]
        attributes = attributes_at(self._projects, project_id, self._inputs.end_ms)
        return {
            "project_id": project_id,
            "project_name": str(attributes.get("name") or ""),
            "project_owner_id": str(attributes.get("owner_id") or ""),
            "project_owner_email": str(attributes.get("owner_email") or ""),
            "messages": cells.integer(key[0]),
        }
