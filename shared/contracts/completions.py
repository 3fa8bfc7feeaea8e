"""Completions on ``usage.export-completions`` (contract §4)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Literal

from pydantic import BaseModel, ConfigDict

#: Kafka header on a completion whose request carried a ``callback_url`` (value ``1``).
CALLBACK_HEADER = "usage-export-callback"


class CompletionData(BaseModel):
    model_config = ConfigDict(frozen=True)

    filePath: str
    downloadUrl: str
    expiresAt: str
    dataType: str
    recordCount: int
    bytes: int
    sha256: str
    dateRange: dict[str, str]
    format: str = "csv"
    ingestedThrough: str | None = None


class CompletionError(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: int
    error: str
    message: str

    @classmethod
    def of(cls, status: int, message: str) -> CompletionError:
        reason = "No data found" if status == 404 else HTTPStatus(status).phrase
        return cls(status=status, error=reason, message=message)


class ExportCompletion(BaseModel):
    model_config = ConfigDict(frozen=True)

    request_id: str
    org_id: str | None
    success: bool
    data: CompletionData | None = None
    error: CompletionError | None = None

    @classmethod
    def ok(cls, request_id: str, org_id: str, data: CompletionData) -> ExportCompletion:
        return cls(request_id=request_id, org_id=org_id, success=True, data=data, error=None)

    @classmethod
    def failed(
        cls, request_id: str, org_id: str | None, status: int, message: str
    ) -> ExportCompletion:
        return cls(
            request_id=request_id,
            org_id=org_id,
            success=False,
            data=None,
            error=CompletionError.of(status, message),
        )


CompletionStatus = Literal[200, 400, 404, 500, 503]
