"""The HTTP API's bodies as pydantic models: what it reads, what it answers.

They mirror the reference documentation (``UsageExportRequest``,
``UsageExportResponse``, ``UsageExportError``) and generate the OpenAPI document, so the
document cannot drift from what the handlers do. Field names are the reference's
(camelCase in responses), not this project's style.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.contracts.destinations import DestinationName
from shared.contracts.export_buckets import BucketUnit
from shared.contracts.export_formats import ExportFormat
from shared.contracts.ids import EntityId

_DATE_HELP = (
    "YYYY-MM-DD or an ISO 8601 date-time, read as wall time in `timezone` "
    "(a trailing Z or offset is ignored). A bare date is the start of that day for "
    "`from`, the end of that day for `to`."
)


class BoundBody(BaseModel):
    """One end of the window."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    date: Annotated[str, StringConstraints(min_length=10, max_length=40)] = Field(
        description=_DATE_HELP, examples=["2024-01-01T00:00:00.000Z"]
    )
    timezone: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        description="IANA timezone of the date, e.g. UTC or Europe/Berlin", examples=["UTC"]
    )


class ExportBody(BaseModel):
    """Request body for usage export endpoints."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    from_: BoundBody = Field(alias="from", description="Start date and timezone for the export")
    to: BoundBody = Field(description="End date and timezone for the export")
    group_by: str | None = Field(
        default=None,
        description="Optional subgroup rows: model (users, assistants, api-keys); "
        "source or deployment (models; deployment only for BYOK workspaces)",
    )
    format: ExportFormat | None = Field(
        default=None,
        description="The file's format: csv (default), csv.gz, parquet or ndjson (an "
        "addition to the reference API; the /json variants answer rows inline and take "
        "csv only)",
    )
    bucket: BucketUnit | None = Field(
        default=None,
        description="Time buckets: day, week or month in the from bound's timezone, one "
        "row per entity per bucket with activity, with bucket_start and bucket_end after "
        "period_end; null (default) for one row per entity over the whole window (an "
        "addition to the reference API)",
    )
    callback_url: Annotated[str, StringConstraints(max_length=2048)] | None = Field(
        default=None,
        description="An https URL that receives the export's completion as a signed POST "
        "when it finishes, success or failure (Usage-Export-Signature; docs/contract.md "
        "§4a). Hosts that resolve to loopback, private, link-local or metadata addresses "
        "are refused with 400 (an addition to the reference API)",
    )
    destination: DestinationName | None = Field(
        default=None,
        description="A destination the exporter has configured: the file is also copied "
        "to {prefix}/{type}/{period}/{filename} in its bucket (400 when unknown; an "
        "addition to the reference API)",
    )


class DateRange(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from", description="Start of the exported window, with offset")
    to: str = Field(description="End of the exported window, with offset")


class ExportSummary(BaseModel):
    """What every successful export answer tells about the file."""

    filePath: str = Field(description="Path to the generated export file")
    dataType: str = Field(description="Type of data exported")
    recordCount: int = Field(description="Number of records in the export")
    dateRange: DateRange = Field(description="Actual date range of the exported data")
    format: ExportFormat = Field(
        description="The file's format (an addition to the reference API: clients may ignore it)"
    )
    ingestedThrough: str | None = Field(
        description="Every event appended to the events topic before this instant (UTC, "
        "milliseconds) is counted in the file; null when the broker could not tell "
        "(an addition to the reference API: clients may ignore it)",
        examples=["2024-02-01T10:00:00.000Z"],
    )


class ExportData(ExportSummary):
    """Export data information."""

    downloadUrl: str = Field(description="Signed URL to download the export file")


class ExportResponse(BaseModel):
    """Successful response from usage export endpoints."""

    success: Literal[True]
    data: ExportData


class RowsData(ExportSummary):
    """The export's rows inline: one object per CSV row, cells as in the CSV file."""

    columns: list[str] = Field(description="The CSV header, in order")
    rows: list[dict[str, str]] = Field(description="One object per row, keyed by column")


class RowsResponse(BaseModel):
    """Successful response of the ``/json`` variants."""

    success: Literal[True]
    data: RowsData


class ErrorResponse(BaseModel):
    """Error response from usage export endpoints."""

    error: str = Field(description="Error type", examples=["No data found"])
    message: str = Field(
        description="Detailed error message",
        examples=["No usage data found for the selected period"],
    )


class PendingResponse(ErrorResponse):
    """The export is still running (202): ask ``statusUrl`` for its outcome later."""

    requestId: EntityId
    statusUrl: str = Field(description="GET this path (same key) for the outcome")
