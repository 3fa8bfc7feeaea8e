"""How an export request was answered: a file (200) or a status with a message.

Final outcomes are 200, 400, 404 and 409; a 500/503 is not final (a later delivery of
the same request retries). The request ledger (``shared.adapters.request_ledger``)
records final outcomes; ``shared.adapters.signed_completions`` turns one into the
completion event of contract §4.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FINAL_STATUSES = frozenset({200, 400, 404, 409})


@dataclass(frozen=True, slots=True)
class ExportFile:
    """The file a successful export wrote (what the completion's ``data`` reports)."""

    file_path: str
    data_type: str
    record_count: int
    size: int
    sha256: str
    date_range: dict[str, str]
    format: str = "csv"
    #: ``ingestedThrough`` (contract §4): UTC, milliseconds; None when it could not be told.
    ingested_through: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "filePath": self.file_path,
            "dataType": self.data_type,
            "recordCount": self.record_count,
            "bytes": self.size,
            "sha256": self.sha256,
            "dateRange": self.date_range,
            "format": self.format,
            "ingestedThrough": self.ingested_through,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExportFile:
        return cls(
            file_path=data["filePath"],
            data_type=data["dataType"],
            record_count=data["recordCount"],
            size=data["bytes"],
            sha256=data["sha256"],
            date_range=dict(data["dateRange"]),
            format=data.get("format", "csv"),  # records written before formats: CSV
            ingested_through=data.get("ingestedThrough"),
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a request was answered: a file (200) or a status with a message."""

    status: int
    message: str = ""
    file: ExportFile | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "message": self.message,
            "file": self.file.to_json() if self.file is not None else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Outcome:
        file = data.get("file")
        return cls(
            status=int(data["status"]),
            message=str(data.get("message") or ""),
            file=ExportFile.from_json(file) if file else None,
        )
