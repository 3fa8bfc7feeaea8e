"""HTTP answers in the reference's shapes: ``{success, data}`` or ``{error, message}``."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from services.api.schemas import DateRange, ErrorResponse, ExportData, ExportResponse
from shared import codec
from shared.contracts.completions import CompletionData, ExportCompletion


def json_response(
    status: int, body: BaseModel | dict[str, Any], headers: dict[str, str] | None = None
) -> web.Response:
    payload = body.model_dump(mode="json", by_alias=True) if isinstance(body, BaseModel) else body
    return web.Response(
        status=status, body=codec.dumps(payload), content_type="application/json", headers=headers
    )


def error_response(
    status: int,
    message: str,
    *,
    error: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """``{"error": <reason>, "message": <what to do>}`` with the status's reason phrase."""
    reason = error or HTTPStatus(status).phrase
    return json_response(status, ErrorResponse(error=reason, message=message), headers)


def summary_fields(data: CompletionData) -> dict[str, Any]:
    """The fields of :class:`ExportSummary` from a completion's data."""
    date_range = DateRange.model_validate(
        {"from": data.dateRange.get("from", ""), "to": data.dateRange.get("to", "")}
    )
    return {
        "filePath": data.filePath,
        "dataType": data.dataType,
        "recordCount": data.recordCount,
        "dateRange": date_range,
        "format": data.format,
        "ingestedThrough": data.ingestedThrough,
    }


def export_body(data: CompletionData) -> ExportResponse:
    """The reference's success body: its five data fields, ``format`` and
    ``ingestedThrough``."""
    return ExportResponse(
        success=True, data=ExportData(downloadUrl=data.downloadUrl, **summary_fields(data))
    )


def failure_response(completion: ExportCompletion) -> web.Response:
    """A failed completion as its HTTP status (400, 404, 409, 500, 503)."""
    failure = completion.error
    if failure is None:
        return error_response(500, "The export failed without saying why")
    return error_response(failure.status, failure.message, error=failure.error)
