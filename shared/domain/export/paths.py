"""Object keys of the exports bucket: the contract's file path and our own records.

The file path (contract §4) is a pure function of the request and its resolved window,
so a repeated request lands on the same key. Keys are only ever built from validated ids.
"""

from __future__ import annotations

from datetime import date

from shared.contracts.export_formats import ExportFormat
from shared.contracts.ids import is_valid_id
from shared.contracts.requests import DataType

REQUESTS_PREFIX = "requests/"
FILE_OWNERS_PREFIX = "file-owners/"


def _checked(name: str, value: str) -> str:
    if not is_valid_id(value):
        raise ValueError(f"refusing to build an object key from {name} {value!r}")
    return value


def export_file_path(
    data_type: DataType,
    org_id: str,
    period_start: date,
    period_end: date,
    request_id: str,
    export_format: ExportFormat = ExportFormat.CSV,
) -> str:
    """``{kind}-usage/{org}/{kind}-usage-{start}-{end}-{request_id[:8]}.{format}``."""
    kind = data_type.kind
    org = _checked("org id", org_id)
    rid = _checked("request id", request_id)
    return (
        f"{kind}-usage/{org}/{kind}-usage-{period_start.isoformat()}-"
        f"{period_end.isoformat()}-{rid[:8]}.{export_format.value}"
    )


def request_record_key(org_id: str, request_id: str) -> str:
    """The idempotency record of one request."""
    return (
        f"{REQUESTS_PREFIX}{_checked('org id', org_id)}/{_checked('request id', request_id)}.json"
    )


def file_owner_key(file_path: str) -> str:
    """Marks which request owns an export file path (two request ids may share 8 chars)."""
    return f"{FILE_OWNERS_PREFIX}{file_path}.owner"
