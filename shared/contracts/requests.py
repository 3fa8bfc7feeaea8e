"""Export requests on ``usage.export-requests`` (contract §3)."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)

from shared.contracts.destinations import DestinationName
from shared.contracts.export_buckets import BucketUnit
from shared.contracts.export_formats import ExportFormat
from shared.contracts.export_types import DataType as DataType
from shared.contracts.export_types import accepted_names
from shared.contracts.ids import EntityId


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
                "enum": accepted_names(),
                "description": "agents = assistants; api-keys = api_keys",
            }
        ),
    ]
    from_: Bound = Field(alias="from")
    to: Bound
    group_by: str | None = None
    format: ExportFormat = ExportFormat.CSV
    bucket: BucketUnit | None = None
    #: A destination the exporter has configured: the file is copied there too.
    destination: DestinationName | None = None
    requested_by: Annotated[str | None, StringConstraints(max_length=256)] = None
    callback_url: Annotated[
        str | None,
        StringConstraints(max_length=2048),
        WithJsonSchema(
            {
                "anyOf": [{"type": "string", "format": "uri", "maxLength": 2048}, {"type": "null"}],
                "description": "https URL that receives the completion as a signed POST "
                "(contract §4a); public addresses only",
            }
        ),
    ] = None

    @field_validator("data_type", mode="before")
    @classmethod
    def _alias(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return DataType.parse(value)
            except ValueError:
                return value
        return value
