"""Export file formats (contract §3, ``format``; §5): what a request may ask for, and how
each is named and served."""

from __future__ import annotations

from enum import StrEnum


class ExportFormat(StrEnum):
    """The format of an export file; its value is the file name's extension."""

    CSV = "csv"
    CSV_GZ = "csv.gz"
    PARQUET = "parquet"
    NDJSON = "ndjson"

    @property
    def content_type(self) -> str:
        """The object's ``Content-Type``. A gzip file is served as what it is
        (``application/gzip``), not as CSV with ``Content-Encoding: gzip``: an HTTP client
        honouring that header would save the decompressed bytes under the ``.gz`` name,
        and their digest would not be the completion's ``sha256``."""
        return _CONTENT_TYPES[self]


_CONTENT_TYPES: dict[ExportFormat, str] = {
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.CSV_GZ: "application/gzip",
    ExportFormat.PARQUET: "application/vnd.apache.parquet",
    ExportFormat.NDJSON: "application/x-ndjson",
}

#: The accepted values, as a request names them.
FORMAT_NAMES: tuple[str, ...] = tuple(f.value for f in ExportFormat)
