"""The typed formats (CONTRACT §5, "Formats") from a reference export: each cell's value
as the Parquet and NDJSON files must hold it, read independently of the code.

The kind of each column comes from the contract itself: the "value" cell of its row in
the column tables of ``docs/contract.md`` (``period_start``, ``period_end``: dates; a
column in no table, i.e. a subgroup column, is text). Then, for a cell text ``t`` before
the CSV's formula guard: '' → None; integer → ``int(t)``; money → a ``Decimal`` with 6
decimals; average, percentage → a ``Decimal`` with 2; boolean → ``t == "true"``; date
→ ``date.fromisoformat(t)``; JSON and text → ``t``.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from tests.reference.export import ReferenceResult

_CONTRACT = Path(__file__).resolve().parents[2] / "docs" / "contract.md"
_ROW = re.compile(r"^\| `([a-z_]+)` \| (\w+) \|", re.MULTILINE)
_KINDS = {"text", "date", "money", "percentage", "integer", "JSON", "average", "boolean"}
_PLACES = {"money": 6, "average": 2, "percentage": 2}


@cache
def column_kinds() -> dict[str, str]:
    """Column → kind, from the contract's column tables (one kind per name)."""
    kinds = {"period_start": "date", "period_end": "date", "org_id": "text",
             "bucket_start": "date", "bucket_end": "date"}  # fmt: skip
    for column, kind in _ROW.findall(_CONTRACT.read_text(encoding="utf-8")):
        if kind in _KINDS:
            assert kinds.get(column, kind) == kind, f"{column}: two kinds in the contract"
            kinds[column] = kind
    return kinds


def typed_value(column: str, text: str) -> Any:
    """The value of one cell (before the formula guard) in the typed formats."""
    if text == "":
        return None
    kind = column_kinds().get(column, "text")
    if kind == "integer":
        return int(text)
    if kind in _PLACES:
        value = Decimal(text)
        assert value.as_tuple().exponent == -_PLACES[kind], (column, text)
        return value
    if kind == "boolean":
        assert text in ("true", "false"), (column, text)
        return text == "true"
    if kind == "date":
        return date.fromisoformat(text)
    return text


def reference_typed_rows(result: ReferenceResult) -> list[dict[str, Any]]:
    """The export's rows as typed values, keyed by column, in order."""
    return [
        {column: typed_value(column, cell) for column, cell in zip(result.header, row, strict=True)}
        for row in result.values
    ]
