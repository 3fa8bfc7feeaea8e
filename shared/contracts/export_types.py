"""The five export types and, for each, one :class:`ExportSpec`: everything that differs
between them (contract §3 subgroups, §4 file name, §5 columns, the query that makes the
rows and the facts columns it reads, the API's URL segments) in one record per type,
looked up with :func:`spec`.

The column tuples are the reference documentation's tables verbatim (kept in
tests/reference/seed_columns.md; both are checked by tests)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class DataType(StrEnum):
    USERS = "users"
    ASSISTANTS = "assistants"
    API_KEYS = "api_keys"
    PROJECTS = "projects"
    MODELS = "models"

    @property
    def kind(self) -> str:
        """The file-name kind of contract §4 (``agents`` for assistants)."""
        return EXPORT_SPECS[self].kind

    @classmethod
    def parse(cls, value: str) -> DataType:
        """Accepts the contract's names and each type's kind as an alias (``agents``,
        ``api-keys``)."""
        return _BY_KIND.get(value) or cls(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportSpec:
    """What one export type is made of."""

    #: The file-name kind of contract §4, also accepted as the type's name.
    kind: str
    #: The API's URL segments (``/export/{segment}``) and the noun its summaries use.
    url_segments: tuple[str, ...]
    noun: str
    #: The SQL file of ``shared/columnar/queries`` that makes the rows.
    query_file: str
    #: The facts columns that query reads (the exporter reads no others).
    facts_columns: tuple[str, ...]
    #: Contract §5 columns after ``HEAD``, and those a BYOK workspace gets after them.
    columns: tuple[str, ...]
    byok_columns: tuple[str, ...]
    #: Left out when the workspace has user-level data disabled.
    private: frozenset[str] = frozenset()
    #: Subgroup dimensions allowed (contract §3); ``deployment`` needs a BYOK workspace.
    group_by: frozenset[str] = frozenset()
    #: Left out of subgrouped exports: they describe the whole entity, not one subgroup.
    omitted_when_grouped: frozenset[str] = frozenset()
    #: The column the subgroup column follows (None: the type has no subgroups).
    subgroup_after: str | None = None


#: The facts columns of the exports that read the sums per key (``queries/key_parts.sql``):
#: api_keys, models, projects.
_KEYED_FACTS: Final = (
    "kind", "occurred_ms", "api_key_id", "project_id", "model", "provider", "byok",
    "deployment", "source", "requests", "prompt_tokens", "completion_tokens",
    "cached_tokens", "creation_tokens", "cost_nano",
)  # fmt: skip

# One literal per type, every field spelled out (the shapes repeat: that is the table).
EXPORT_SPECS: Final[dict[DataType, ExportSpec]] = {
    DataType.USERS: ExportSpec(
        kind="users",
        url_segments=("users",),
        noun="user",
        query_file="users.sql",
        facts_columns=(
            "kind", "occurred_ms", "user_id", "assistant_id", "project_id", "model", "actions",
            "prompt_tokens", "completion_tokens", "cached_tokens", "creation_tokens",
            "cost_nano", "amount_nano",
        ),
        columns=(
            "user_id", "name", "email", "role", "joined_at", "department", "company_name",
            "license_type", "payg_limit_current", "payg_consumption_in_period",
            "payg_utilization_pct_current", "messages_total", "messages_total_rank",
            "messages_chat", "messages_chat_rank", "messages_assistants",
            "messages_assistants_rank", "assistants_messaged", "assistants_to_messages",
            "messages_projects", "messages_projects_rank", "projects_messaged",
            "projects_to_messages", "model_to_messages_total", "action_messages",
            "action_messaged", "action_to_messages",
        ),
        byok_columns=(
            "total_input_tokens", "total_output_tokens", "cached_prompt_tokens",
            "cache_creation_tokens", "no_cache_tokens", "total_cost_usd",
        ),
        private=frozenset({"name", "email"}),
        group_by=frozenset({"model"}),
        omitted_when_grouped=frozenset({
            "messages_total_rank", "messages_chat_rank", "messages_assistants_rank",
            "messages_projects_rank", "assistants_to_messages", "projects_to_messages",
            "model_to_messages_total", "action_messages", "action_messaged",
            "action_to_messages", "projects_messaged",
        }),
        subgroup_after="user_id",
    ),
    DataType.ASSISTANTS: ExportSpec(
        kind="agents",
        url_segments=("assistants", "agents"),
        noun="agent",
        query_file="agents.sql",
        facts_columns=(
            "kind", "occurred_ms", "user_id", "assistant_id", "conversation_id", "model",
            "prompt_tokens", "completion_tokens", "cached_tokens", "creation_tokens",
        ),
        columns=(
            "assistant_id", "assistant_name", "assistant_description", "assistant_url",
            "assistant_owner_id", "assistant_owner_email", "messages", "unique_users",
            "active_users", "conversations", "messages_per_user",
        ),
        byok_columns=(
            "sum_prompt_tokens", "avg_prompt_tokens", "min_prompt_tokens", "max_prompt_tokens",
            "sum_completion_tokens", "avg_completion_tokens", "min_completion_tokens",
            "max_completion_tokens", "sum_cached_prompt_tokens", "sum_cache_creation_tokens",
            "sum_no_cache_tokens",
        ),
        private=frozenset({"assistant_owner_email"}),
        group_by=frozenset({"model"}),
        omitted_when_grouped=frozenset({"active_users", "conversations", "messages_per_user"}),
        subgroup_after="assistant_id",
    ),
    DataType.API_KEYS: ExportSpec(
        kind="api-keys",
        url_segments=("api-keys",),
        noun="API key",
        query_file="api_keys.sql",
        facts_columns=_KEYED_FACTS,
        columns=("api_key_id", "api_key_name", "requests", "total_cost_usd"),
        byok_columns=(
            "sum_prompt_tokens", "sum_completion_tokens", "cached_prompt_tokens",
            "cache_creation_tokens", "no_cache_tokens",
        ),
        group_by=frozenset({"model"}),
        subgroup_after="api_key_id",
    ),
    DataType.PROJECTS: ExportSpec(
        kind="projects",
        url_segments=("projects",),
        noun="project",
        query_file="projects.sql",
        facts_columns=_KEYED_FACTS,
        columns=(
            "project_id", "project_name", "project_owner_id", "project_owner_email", "messages",
        ),
        byok_columns=(),
        private=frozenset({"project_owner_email"}),
    ),
    DataType.MODELS: ExportSpec(
        kind="models",
        url_segments=("models",),
        noun="model",
        query_file="models.sql",
        facts_columns=_KEYED_FACTS,
        columns=("name", "provider", "bring_your_keys", "requests"),
        byok_columns=(
            "sum_prompt_tokens", "sum_completion_tokens", "sum_cached_prompt_tokens",
            "sum_cache_creation_tokens", "no_cache_tokens", "total_cost_usd",
        ),
        group_by=frozenset({"source", "deployment"}),
        subgroup_after="bring_your_keys",
    ),
}  # fmt: skip

_BY_KIND: Final = {spec.kind: data_type for data_type, spec in EXPORT_SPECS.items()}


def spec(data_type: DataType) -> ExportSpec:
    """The spec of one export type."""
    return EXPORT_SPECS[data_type]


def accepted_names() -> list[str]:
    """Every name a request may give its type: each type's name, then its kind when that
    differs (``agents``, ``api-keys``)."""
    names: list[str] = []
    for data_type, export in EXPORT_SPECS.items():
        names += [data_type.value] if export.kind == data_type.value else [data_type, export.kind]
    return [str(name) for name in names]
