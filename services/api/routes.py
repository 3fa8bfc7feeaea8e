"""The route table: every path the API serves, for the server and the OpenAPI document.

Paths are given without the deployment prefix; the server mounts each one twice, bare
and under ``api_path_prefix`` (the reference docs' ``/api/public``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shared.contracts.export_types import EXPORT_SPECS, DataType


class Variant(StrEnum):
    FILE = "file"  # the reference response: a signed URL to the CSV file
    CSV = "csv"  # the same, under an explicit name
    JSON = "json"  # the rows inline


@dataclass(frozen=True, slots=True)
class ExportRoute:
    path: str
    data_type: DataType
    variant: Variant
    summary: str

    @property
    def operation_id(self) -> str:
        name = self.path.strip("/").replace("/", "_").replace("-", "_")
        return f"post_{name}"


STATUS_PATH = "/export/requests/{request_id}"


def _routes() -> tuple[ExportRoute, ...]:
    routes = []
    # Each type's URL segments (`agents` is the reference's alias of assistants).
    segments = [
        (segment, data_type, export.noun)
        for data_type, export in EXPORT_SPECS.items()
        for segment in export.url_segments
    ]
    for segment, data_type, noun in segments:
        routes.append(
            ExportRoute(f"/export/{segment}", data_type, Variant.FILE, f"Export {noun} usage data")
        )
        routes.append(
            ExportRoute(
                f"/export/{segment}/csv",
                data_type,
                Variant.CSV,
                f"Export {noun} usage data as a CSV file (same as /export/{segment})",
            )
        )
        routes.append(
            ExportRoute(
                f"/export/{segment}/json",
                data_type,
                Variant.JSON,
                f"Export {noun} usage data with the rows inline as JSON",
            )
        )
    return tuple(routes)


EXPORT_ROUTES = _routes()


def status_path(request_id: str, prefix: str = "") -> str:
    return f"{prefix}{STATUS_PATH.format(request_id=request_id)}"
