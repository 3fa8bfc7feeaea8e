"""JSON Schemas of every message of the contract, from the pydantic models.

Inputs (events, requests) are described as they are validated ("validation" mode),
completions as they are produced ("serialization" mode). Paths are relative to the
contract documents directory (``docs/contracts``).
"""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel, TypeAdapter

from shared.contracts.completions import ExportCompletion
from shared.contracts.events import EVENT_TYPES, UsageEvent, usage_event_adapter
from shared.contracts.requests import ExportRequest

REGENERATE = "usage-export contracts write"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
GENERATED = f"Generated from shared/contracts by `{REGENERATE}`; do not edit."

USAGE_EVENT_SCHEMA = "schemas/usage-event.json"
EXPORT_REQUEST_SCHEMA = "schemas/export-request.json"
EXPORT_COMPLETION_SCHEMA = "schemas/export-completion.json"


def event_models() -> dict[str, type[BaseModel]]:
    """Event type -> model, read from the ``UsageEvent`` union itself (nothing to forget)."""
    union, *_ = typing.get_args(UsageEvent)
    models: dict[str, type[BaseModel]] = {}
    for model in typing.get_args(union):
        (event_type,) = typing.get_args(model.model_fields["type"].annotation)
        models[event_type] = model
    if tuple(models) != EVENT_TYPES:
        raise AssertionError(f"UsageEvent members {list(models)} != EVENT_TYPES {EVENT_TYPES}")
    return models


def event_schema_path(event_type: str) -> str:
    return f"schemas/events/{event_type}.json"


def _schema_file(schema: dict[str, Any]) -> dict[str, Any]:
    return {"$schema": JSON_SCHEMA_DIALECT, "$comment": GENERATED, **schema}


def json_schemas() -> dict[str, dict[str, Any]]:
    """Relative path -> JSON Schema of every message of contract §1-4."""
    adapter: TypeAdapter[Any] = usage_event_adapter
    schemas = {USAGE_EVENT_SCHEMA: _schema_file(adapter.json_schema(mode="validation"))}
    for event_type, model in event_models().items():
        schemas[event_schema_path(event_type)] = _schema_file(
            model.model_json_schema(mode="validation")
        )
    schemas[EXPORT_REQUEST_SCHEMA] = _schema_file(
        ExportRequest.model_json_schema(mode="validation")
    )
    schemas[EXPORT_COMPLETION_SCHEMA] = _schema_file(
        ExportCompletion.model_json_schema(mode="serialization")
    )
    return schemas
