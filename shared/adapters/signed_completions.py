"""Outcomes → completion events (contract §4), for the exporter and the HTTP API alike.

A successful outcome gets a fresh presigned URL each time it is published (a redelivered
request gets a working link even when the first one expired); ``expiresAt`` is when that
URL stops working, in UTC with millisecond precision.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from shared.adapters.object_store import ObjectStore
from shared.contracts.completions import CompletionData, ExportCompletion
from shared.domain.export.outcomes import Outcome
from shared.domain.window import format_instant, to_ms

_UTC = ZoneInfo("UTC")


def expires_at(now: datetime, ttl_s: int) -> str:
    """``2026-02-01T10:00:00.000Z``: when a URL signed at ``now`` stops working."""
    return format_instant(to_ms(now + timedelta(seconds=ttl_s)), _UTC)


async def completion_of(
    outcome: Outcome,
    *,
    request_id: str,
    org_id: str | None,
    exports: ObjectStore,
    ttl_s: int,
    now: datetime,
) -> ExportCompletion:
    if outcome.status != 200 or outcome.file is None or org_id is None:
        return ExportCompletion.failed(request_id, org_id, outcome.status, outcome.message)
    file = outcome.file
    url = await exports.presign_download(
        file.file_path, ttl_s, filename=file.file_path.rsplit("/", 1)[-1]
    )
    data = CompletionData(
        filePath=file.file_path,
        downloadUrl=url,
        expiresAt=expires_at(now, ttl_s),
        dataType=file.data_type,
        recordCount=file.record_count,
        bytes=file.size,
        sha256=file.sha256,
        dateRange=file.date_range,
        format=file.format,
        ingestedThrough=file.ingested_through,
    )
    return ExportCompletion.ok(request_id, org_id, data)
