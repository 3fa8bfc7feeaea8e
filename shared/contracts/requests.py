"""Export requests on ``usage.export-requests`` (contract §3)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)

from shared.contracts.ids import EntityId


class DataType(StrEnum):
    USERS = "users"
    ASSISTANTS = "assistants"
    API_KEYS = "api_keys"
    PROJECTS = "projects"
    MODELS = "models"

    @property
    def kind(self) -> str:
        """The file-name kind of contract §4 (``agents`` for assistants)."""
        return _KINDS[self]

    @classmethod
    def parse(cls, value: str) -> DataType:
        """Accepts the contract's names and the ``agents`` alias (also ``api-keys``)."""
        normalized = _ALIASES.get(value, value)
        return cls(normalized)


_KINDS = {
    DataType.USERS: "users",
    DataType.ASSISTANTS: "agents",
    DataType.API_KEYS: "api-keys",
    DataType.PROJECTS: "projects",
    DataType.MODELS: "models",
}
_ALIASES = {"agents": "assistants", "api-keys": "api_keys"}

#: Subgroup dimensions each type allows (contract §3); `deployment` needs a BYOK workspace.
GROUP_BY_ALLOWED: dict[DataType, frozenset[str]] = {
    DataType.USERS: frozenset({"model"}),
    DataType.ASSISTANTS: frozenset({"model"}),
    DataType.API_KEYS: frozenset({"model"}),
    DataType.PROJECTS: frozenset(),
    DataType.MODELS: frozenset({"source", "deployment"}),
}


class Bound(BaseModel):
    """One end of the window: wall time ``date`` in IANA ``timezone``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    date: Annotated[str, StringConstraints(min_length=10, max_length=40)]
    timezone: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "UTC"


class ExportRequest(BaseModel):
    """The message any service publishes to ask for an export."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    request_id: EntityId
    org_id: EntityId
    data_type: Annotated[
        DataType,
        WithJsonSchema(
            {
                "type": "string",
                "enum": [
                    "users",
                    "assistants",
                    "agents",
                    "api_keys",
                    "api-keys",
                    "projects",
                    "models",
                ],
                "description": "agents = assistants; api-keys = api_keys",
            }
        ),
    ]
    from_: Bound = Field(alias="from")
    to: Bound
    group_by: str | None = None
    requested_by: Annotated[str | None, StringConstraints(max_length=256)] = None

    @field_validator("data_type", mode="before")
    @classmethod
    def _alias(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return DataType.parse(value)
            except ValueError:
                return value
        return value
