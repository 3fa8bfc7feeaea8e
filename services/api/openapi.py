"""The OpenAPI 3.1 document of the HTTP API, generated from the route table and the models.

One source of truth: the paths are :data:`EXPORT_ROUTES` and the status route, the
schemas are the pydantic models the handlers use, and the group_by choices per type are
each type's spec's ``group_by``. ``usage-export contracts write`` commits the
result as ``docs/contracts/openapi.json``; a unit test fails when it is stale. The
prefixed copies of every path (``/api/public``) are a second server, as in the reference.
"""

from __future__ import annotations

import copy
from importlib.metadata import version
from typing import Any

from pydantic import BaseModel

from services.api.routes import EXPORT_ROUTES, STATUS_PATH, ExportRoute, Variant
from services.api.schedules import (
    PAUSE_PATH,
    RESUME_PATH,
    SCHEDULE_PATH,
    SCHEDULE_ROUTES,
    SCHEDULES_PATH,
    ScheduleBody,
    ScheduleListResponse,
    ScheduleResponse,
)
from services.api.schemas import (
    ErrorResponse,
    ExportBody,
    ExportResponse,
    PendingResponse,
    RowsResponse,
)
from shared.contracts.export_types import DataType, spec
from shared.contracts.ids import ID_RULE
from shared.settings import Settings

_REF = "#/components/schemas/{model}"
_ERROR = {
    400: "Bad Request: the body, dates, timezone, group_by or Idempotency-Key",
    401: "Unauthorized: missing, unknown, revoked or wrongly scoped API key",
    403: "Forbidden: browser requests (an Origin header) are refused",
    404: "No data found for the window (or, on the status route, no such request)",
    409: "Conflict: another request already wrote this export file",
    413: "Too large: a body over 64 KiB, or (/json) an export above the inline bounds",
    429: "Too Many Requests: the key's rate limit; see Retry-After",
    500: "Internal error, or the export failed after its retries",
    503: "Service Unavailable: broker or store unreachable, or too many waiting requests",
}
_RETRY_AFTER = {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}


def _schemas() -> dict[str, Any]:
    """Every component schema: the models' own and their nested ``$defs``."""
    schemas: dict[str, Any] = {}
    models: list[tuple[type[BaseModel], str]] = [
        (ExportResponse, "serialization"),
        (RowsResponse, "serialization"),
        (ErrorResponse, "serialization"),
        (PendingResponse, "serialization"),
        (ExportBody, "validation"),
        (ScheduleBody, "validation"),
        (ScheduleResponse, "serialization"),
        (ScheduleListResponse, "serialization"),
    ]
    for model, mode in models:
        schema = model.model_json_schema(ref_template=_REF, mode=mode)  # type: ignore[arg-type]
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    for data_type in DataType:
        schemas[_body_name(data_type)] = _typed_body(schemas[ExportBody.__name__], data_type)
    del schemas[ExportBody.__name__]
    return dict(sorted(schemas.items()))


def _body_name(data_type: DataType) -> str:
    return "".join(part.title() for part in data_type.value.split("_")) + "ExportRequest"


def _typed_body(generic: dict[str, Any], data_type: DataType) -> dict[str, Any]:
    """The request body of one type: group_by limited to that type's subgroups."""
    body = copy.deepcopy(generic)
    body["title"] = _body_name(data_type)
    allowed = sorted(spec(data_type).group_by)
    group_by = body["properties"]["group_by"]
    group_by.pop("anyOf", None)
    group_by["enum"] = [*allowed, None]
    return body


def _content(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}}}


def _errors(statuses: list[int]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status in statuses:
        response: dict[str, Any] = {
            "description": _ERROR[status],
            "content": _content(ErrorResponse),
        }
        if status in (429, 503):
            response["headers"] = {"Retry-After": _RETRY_AFTER}
        responses[str(status)] = response
    return responses


def _pending() -> dict[str, Any]:
    return {
        "description": "Accepted: still running after the API's timeout; GET statusUrl later",
        "headers": {
            "Location": {"description": "The status route", "schema": {"type": "string"}},
            "Retry-After": _RETRY_AFTER,
        },
        "content": _content(PendingResponse),
    }


def _export_operation(route: ExportRoute) -> dict[str, Any]:
    success = RowsResponse if route.variant is Variant.JSON else ExportResponse
    responses = {"200": {"description": "Export successful", "content": _content(success)}}
    responses["202"] = _pending()
    responses.update(_errors([400, 401, 403, 404, 409, 413, 429, 500, 503]))
    return {
        "tags": ["Usage Export"],
        "operationId": route.operation_id,
        "summary": route.summary,
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Becomes the export's request id: a repeat answers the same "
                f"export. {ID_RULE}.",
                "schema": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"},
            }
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": _REF.format(model=_body_name(route.data_type))}
                }
            },
        },
        "responses": dict(sorted(responses.items())),
    }


def _status_operation() -> dict[str, Any]:
    responses = {
        "200": {"description": "The finished export", "content": _content(ExportResponse)},
        "202": _pending(),
        **_errors([400, 401, 403, 404, 409, 429, 500, 503]),
    }
    return {
        "tags": ["Usage Export"],
        "operationId": "get_export_request",
        "summary": "Outcome of an export request answered 202 (this workspace's only)",
        "parameters": [
            {
                "name": "request_id",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"},
            }
        ],
        "responses": dict(sorted(responses.items())),
    }


_ID_PARAMETER = {
    "name": "schedule_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"},
}
_SCHEDULE_OPERATIONS: dict[tuple[str, str], tuple[str, str, str]] = {
    # (method, path): (operationId, summary, success status)
    ("POST", SCHEDULES_PATH): ("create_schedule", "Create a scheduled export", "201"),
    ("GET", SCHEDULES_PATH): ("list_schedules", "This workspace's schedules", "200"),
    ("GET", SCHEDULE_PATH): ("get_schedule", "One schedule", "200"),
    ("DELETE", SCHEDULE_PATH): ("delete_schedule", "Delete a schedule", "200"),
    ("POST", PAUSE_PATH): (
        "pause_schedule",
        "Pause (periods ending meanwhile are skipped)",
        "200",
    ),
    ("POST", RESUME_PATH): ("resume_schedule", "Resume from the period in progress", "200"),
}


def _schedule_operation(method: str, path: str) -> dict[str, Any]:
    operation_id, summary, success = _SCHEDULE_OPERATIONS[(method, path)]
    if method == "GET" and path == SCHEDULES_PATH:
        body: dict[str, Any] = _content(ScheduleListResponse)
    elif method == "DELETE":
        body = {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"success": {"type": "boolean"}},
                    "required": ["success"],
                }
            }
        }
    else:
        body = _content(ScheduleResponse)
    statuses = (
        [400, 401, 403, 429, 500, 503] if path == SCHEDULES_PATH else [401, 403, 404, 429, 500, 503]
    )
    operation: dict[str, Any] = {
        "tags": ["Scheduled exports"],
        "operationId": operation_id,
        "summary": summary,
        "responses": dict(
            sorted(
                {success: {"description": summary, "content": body}, **_errors(statuses)}.items()
            )
        ),
    }
    if "{schedule_id}" in path:
        operation["parameters"] = [_ID_PARAMETER]
    if method == "POST" and path == SCHEDULES_PATH:
        operation["requestBody"] = {"required": True, "content": _content(ScheduleBody)}
    return operation


def openapi_document() -> dict[str, Any]:
    prefix = Settings.model_fields["api_path_prefix"].default
    paths: dict[str, Any] = {
        route.path: {"post": _export_operation(route)} for route in EXPORT_ROUTES
    }
    paths[STATUS_PATH] = {"get": _status_operation()}
    for method, path in SCHEDULE_ROUTES:
        paths.setdefault(path, {})[method.lower()] = _schedule_operation(method, path)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Usage Export API",
            "version": version("usage-export"),
            "description": "Workspace usage exports over HTTP, compatible with the reference "
            "Usage Export API. See docs/api.md.",
        },
        "servers": [
            {"url": "/", "description": "shared deployment"},
            {"url": prefix, "description": "dedicated deployment (USAGE_API_PATH_PREFIX)"},
        ],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "API Key",
                    "description": 'API key as Bearer token. Format "Bearer YOUR_API_KEY"',
                }
            },
        },
    }
