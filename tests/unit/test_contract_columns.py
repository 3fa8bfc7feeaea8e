"""docs/contract.md states every export type's columns next to it: they must be the
columns production writes, in order, so the contract cannot drift from the code."""

from __future__ import annotations

import re
from pathlib import Path

from shared.contracts.export_types import EXPORT_SPECS
from shared.domain.export import columns

CONTRACT = Path(__file__).resolve().parents[2] / "docs" / "contract.md"
MARKER = re.compile(r"<!-- columns: (\w+) (base|byok) -->")


def contract_tables(text: str) -> dict[tuple[str, str], list[str]]:
    """(type, base|byok) -> the backquoted first cells of the table after its marker."""
    tables: dict[tuple[str, str], list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if marker := MARKER.fullmatch(line.strip()):
            key = (marker.group(1), marker.group(2))
            assert key not in tables, f"{key} twice"
            current = tables[key] = []
        elif current is not None and (cell := re.match(r"\| `([a-z_]+)` \|", line)):
            current.append(cell.group(1))
        elif current is not None and current and not line.startswith("|"):
            current = None
    return tables


def test_the_parser_reads_a_marked_table() -> None:
    text = "<!-- columns: users base -->\n| column |\n|---|\n| `a` | x |\n| `b` | y |\n\nafter\n"
    assert contract_tables(text) == {("users", "base"): ["a", "b"]}


def test_the_contracts_column_tables_are_productions() -> None:
    expected = {(kind.value, "base"): list(spec.columns) for kind, spec in EXPORT_SPECS.items()}
    expected |= {
        (kind.value, "byok"): list(spec.byok_columns) for kind, spec in EXPORT_SPECS.items()
    }
    expected = {key: value for key, value in expected.items() if value}
    assert contract_tables(CONTRACT.read_text(encoding="utf-8")) == expected


def test_the_contract_names_the_common_head() -> None:
    text = CONTRACT.read_text(encoding="utf-8")
    assert "Every file starts with `period_start`, `period_end`, `org_id`" in text
    assert columns.HEAD == ("period_start", "period_end", "org_id")
