"""Export formats (contract §5, "Formats"): the gzipped CSV is the CSV; the Parquet and
NDJSON files hold the same columns and rows as the CSV, typed as the contract's column
tables say, and equal the oracle's cells read independently (``tests.reference.formats``)
for every type, subgroup and workspace."""

from __future__ import annotations

import gzip
import io
import json
from datetime import date
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from services.exporter.export_job import query_export, settings_of
from shared.columnar.queries.files import ARROW_TYPES, file_bytes
from shared.contracts.export_formats import FORMAT_NAMES, ExportFormat
from shared.contracts.export_types import EXPORT_SPECS, spec
from shared.domain.export.cell_kinds import cell_kind
from shared.domain.export.columns import HEAD
from shared.domain.export.paths import export_file_path
from shared.domain.export.request_validation import (
    ReadableRequest,
    Rejected,
    ValidRequest,
    validate_request,
)
from tests.reference import reference_csv_bytes, reference_request, reference_typed_rows
from tests.reference.formats import column_kinds
from tests.unit.test_export_reference import NOW, TYPES_AND_GROUPS, Stream, request
from tests.unit.test_export_reference import stream as stream  # the fixture, re-exported

WINDOWS = [
    ("2025-12-01", "2026-11-20", "Asia/Kolkata"),
    ("2026-03-20", "2026-04-05", "Europe/Berlin"),
]


def validated(payload: dict[str, Any]) -> ValidRequest:
    readable = ReadableRequest(request_id="r-1", org_id=str(payload["org_id"]), payload=payload)
    found = validate_request(readable, now=NOW)
    assert isinstance(found, ValidRequest), found
    return found


def export_bytes(stream: Stream, payload: dict[str, Any]) -> bytes:
    request = validated(payload)
    workspace = stream.orgs[request.org_id]
    facts = workspace.facts.select(list(spec(request.data_type).facts_columns))
    options = settings_of(workspace.dimensions)
    return query_export(request, facts, workspace.dimensions, options).data


def ndjson_rows(data: bytes, kinds: dict[str, str]) -> list[dict[str, Any]]:
    """NDJSON read with exact decimals, its date strings read as dates."""
    rows = [json.loads(line, parse_float=Decimal) for line in data.decode("utf-8").splitlines()]
    for row in rows:
        for column, value in row.items():
            if kinds.get(column) == "date" and value is not None:
                row[column] = date.fromisoformat(value)
    return rows


@pytest.mark.parametrize(("data_type", "group_by"), TYPES_AND_GROUPS)
@pytest.mark.parametrize("org", ["ws-0001", "ws-0002", "ws-0003", "ws-0004"])
def test_every_format_holds_the_reference_rows(
    stream: Stream, org: str, data_type: str, group_by: str | None
) -> None:
    byok, _ = stream.log.org(org).workspace_settings()
    if group_by == "deployment" and not byok:
        pytest.skip("refused (400) in a workspace that is not BYOK")
    kinds = column_kinds()
    for start, end, zone in WINDOWS:
        payload = request(org, data_type, start, end, zone, group_by)
        expected = reference_request(stream.log, payload, now=NOW)
        typed = reference_typed_rows(expected)
        assert typed, (org, data_type, start)
        csv_gz = export_bytes(stream, payload | {"format": "csv.gz"})
        assert gzip.decompress(csv_gz) == reference_csv_bytes(expected)
        table = pq.read_table(io.BytesIO(export_bytes(stream, payload | {"format": "parquet"})))
        assert table.column_names == expected.header
        for field in table.schema:
            kind = kinds.get(field.name, "text")
            assert field.type == ARROW_TYPES[cell_kind(field.name)], (field.name, kind)
        assert table.to_pylist() == typed
        ndjson = export_bytes(stream, payload | {"format": "ndjson"})
        rows = ndjson_rows(ndjson, kinds)
        assert [list(row) for row in rows] == [expected.header] * len(rows)  # key order
        assert rows == typed


def test_the_code_s_column_kinds_are_the_contract_s() -> None:
    kinds = column_kinds()
    for export in EXPORT_SPECS.values():
        for column in (*HEAD, *export.columns, *export.byok_columns):
            assert cell_kind(column).value == kinds[column], column
    for subgroup in ("model", "source", "deployment"):
        assert cell_kind(subgroup).value == "text"


def test_typed_formats_hold_values_without_the_formula_guard() -> None:
    result = pa.table(
        {
            "name": pa.array(["=1+1", "", None], pa.string()),
            "requests": pa.array(["3", "", None], pa.string()),
            "total_cost_usd": pa.array(["-0.000001", "0.000000", ""], pa.string()),
        }
    )
    columns = ["period_start", "name", "requests", "total_cost_usd"]
    fixed = {"period_start": "2026-01-01"}
    csv = file_bytes(result, columns, ExportFormat.CSV, group_by=None, fixed=fixed)
    assert csv.splitlines()[1] == b"2026-01-01,'=1+1,3,'-0.000001"  # guarded, as text
    parquet = file_bytes(result, columns, ExportFormat.PARQUET, group_by=None, fixed=fixed)
    assert pq.read_table(io.BytesIO(parquet)).to_pylist() == [
        {
            "period_start": date(2026, 1, 1),
            "name": "=1+1",
            "requests": 3,
            "total_cost_usd": Decimal("-0.000001"),
        },
        {
            "period_start": date(2026, 1, 1),
            "name": None,
            "requests": None,
            "total_cost_usd": Decimal("0.000000"),
        },
        {"period_start": date(2026, 1, 1), "name": None, "requests": None, "total_cost_usd": None},
    ]
    ndjson = file_bytes(result, columns, ExportFormat.NDJSON, group_by=None, fixed=fixed)
    assert ndjson.decode().splitlines() == [
        '{"period_start":"2026-01-01","name":"=1+1","requests":3,"total_cost_usd":-0.000001}',
        '{"period_start":"2026-01-01","name":null,"requests":null,"total_cost_usd":0.000000}',
        '{"period_start":"2026-01-01","name":null,"requests":null,"total_cost_usd":null}',
    ]
    empty = result.slice(0, 0)
    assert file_bytes(empty, columns, ExportFormat.NDJSON, group_by=None, fixed=fixed) == b""
    assert (
        pq.read_table(
            io.BytesIO(file_bytes(empty, columns, ExportFormat.PARQUET, group_by=None, fixed=fixed))
        ).column_names
        == columns
    )


def test_money_too_large_for_its_parquet_type_fails_rather_than_being_written_wrong() -> None:
    result = pa.table({"total_cost_usd": pa.array(["1000000000000.000000"], pa.string())})
    with pytest.raises(pa.ArrowInvalid):
        file_bytes(result, ["total_cost_usd"], ExportFormat.PARQUET, group_by=None, fixed={})
    csv = file_bytes(result, ["total_cost_usd"], ExportFormat.CSV, group_by=None, fixed={})
    assert csv == b"total_cost_usd\r\n1000000000000.000000\r\n"


def test_the_request_names_the_format_and_the_file_s_extension() -> None:
    base = request("ws-0001", "users", "2026-01-01", "2026-01-31", "UTC")
    assert validated(base).format is ExportFormat.CSV
    assert validated(base | {"format": None}).format is ExportFormat.CSV
    for name in FORMAT_NAMES:
        found = validated(base | {"format": name})
        assert found.format.value == name
        path = export_file_path(
            found.data_type,
            found.org_id,
            found.window.period_start(),
            found.window.period_end(),
            "0b6f7c1e-4f0a",
            found.format,
        )
        assert path == f"users-usage/ws-0001/users-usage-2026-01-01-2026-01-31-0b6f7c1e.{name}"
    for wrong in ("CSV", "xlsx", "", 1, ["csv"]):
        readable = ReadableRequest("r-1", "ws-0001", base | {"format": wrong})
        rejected = validate_request(readable, now=NOW)
        assert isinstance(rejected, Rejected), wrong
        assert "format" in rejected.message
        assert "csv.gz" in rejected.message
