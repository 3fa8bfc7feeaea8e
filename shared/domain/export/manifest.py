"""The manifest beside each export file (``…-0b6f7c1e.manifest.json``, contract §4): what
was asked, the resolved window, the file's format, columns, size and digest, and
``ingestedThrough``, for readers that find the file without its completion."""

from __future__ import annotations

from typing import Any, Final

from shared import codec
from shared.domain.export.outcomes import ExportFile
from shared.domain.export.request_validation import ValidRequest

#: Bump when a field's meaning changes; fields may be added without a bump.
MANIFEST_VERSION: Final = 1
_SUFFIX: Final = ".manifest.json"


def manifest_path(file_path: str, export_format: str) -> str:
    """``…-0b6f7c1e.manifest.json`` beside ``…-0b6f7c1e.{export_format}``."""
    extension = f".{export_format}"
    if not file_path.endswith(extension):
        raise ValueError(f"{file_path} does not end with {extension}")
    return file_path.removesuffix(extension) + _SUFFIX


def manifest(request: ValidRequest, file: ExportFile, columns: list[str]) -> dict[str, Any]:
    """The manifest's content."""
    window = request.window
    return {
        "schemaVersion": MANIFEST_VERSION,
        "request": {
            "request_id": request.request_id,
            "org_id": request.org_id,
            "data_type": request.data_type.value,
            "group_by": request.group_by,
            "format": request.format.value,
            "bucket": None if request.bucket is None else request.bucket.value,
        },
        "window": {
            "dateRange": file.date_range,
            "periodStart": window.period_start().isoformat(),
            "periodEnd": window.period_end().isoformat(),
            "buckets": len(request.buckets),
        },
        "filePath": file.file_path,
        "format": file.format,
        "columns": columns,
        "recordCount": file.record_count,
        "bytes": file.size,
        "sha256": file.sha256,
        "ingestedThrough": file.ingested_through,
    }


def manifest_bytes(request: ValidRequest, file: ExportFile, columns: list[str]) -> bytes:
    return codec.dumps(manifest(request, file, columns))
