"""Figures of each fault scenario, collected by the tests and printed as a table.

A test fills one :class:`ScenarioFigures` (the ``figures`` fixture); when
``USAGE_TEST_RELIABILITY_RESULTS`` names a file, the fixture merges the row into it after
the test, with the test's outcome. ``python -m tests.integration.reliability`` sets the
variable, runs the suite and prints :func:`render_table` of the file.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

RESULTS_VARIABLE = "USAGE_TEST_RELIABILITY_RESULTS"
DEFAULT_RESULTS = Path("reliability-results.json")

SCENARIOS = {
    "1": "Ingest SIGKILLed at random moments, restarted",
    "2": "Ingest group: member killed, member added, zombie",
    "3": "Archive re-produced (new offsets, same ids)",
    "4a": "Object store down during ingest",
    "4b": "Object store down during exports",
    "5": "Exporter SIGKILLed mid-export",
    "6": "Malformed events and requests (hypothesis)",
    "7": "Tenant isolation, hostile ids",
    "8": "Signed URLs and anonymous access",
    "9": "20 workspaces export during full-speed ingest",
}


@dataclass
class ScenarioFigures:
    """One row of the table. ``lost``/``doubled`` are counted units (messages in users
    exports + model requests in API-key exports) compared with the reference; ``leaked``
    is foreign or hostile data found where it must not be (rows, cells, object keys,
    anonymous or tampered reads that succeeded)."""

    scenario: str
    size: str
    runs: int = 1
    events: int = 0
    faults: int = 0
    fault_kinds: str = ""
    exports: int = 0
    lost: int = 0
    doubled: int = 0
    leaked: int = 0
    result: str = "not finished"
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic, repr=False)

    @property
    def key(self) -> str:
        return f"{self.scenario}/{self.size}"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("started")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScenarioFigures:
        known = {item.name for item in fields(cls)} - {"started"}
        return cls(**{name: value for name, value in data.items() if name in known})


def results_path() -> Path | None:
    value = os.environ.get(RESULTS_VARIABLE, "").strip()
    return Path(value) if value else None


def load_results(path: Path) -> dict[str, ScenarioFigures]:
    if not path.exists():
        return {}
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {key: ScenarioFigures.from_json(row) for key, row in raw.items()}


def merge_result(path: Path, figures: ScenarioFigures) -> None:
    """Add or replace one row (by scenario and size); atomic replace of the file."""
    rows = load_results(path)
    rows[figures.key] = figures
    ordered = dict(sorted(rows.items(), key=lambda item: _order(item[1])))
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(
        json.dumps({key: row.to_json() for key, row in ordered.items()}, indent=2) + "\n",
        encoding="utf-8",
    )
    temporary.replace(path)


def _order(row: ScenarioFigures) -> tuple[int, str, int, str]:
    number = "".join(ch for ch in row.scenario if ch.isdigit())
    return (int(number or 0), row.scenario, 0 if row.size == "short" else 1, row.size)


COLUMNS = (
    "scenario",
    "size",
    "runs",
    "events",
    "faults injected",
    "exports",
    "lost",
    "double counted",
    "leaked",
    "result",
    "seconds",
)


def table_rows(rows: dict[str, ScenarioFigures]) -> list[list[str]]:
    table = []
    for row in sorted(rows.values(), key=_order):
        title = SCENARIOS.get(row.scenario, "")
        faults = f"{row.faults} ({row.fault_kinds})" if row.fault_kinds else str(row.faults)
        table.append(
            [
                f"{row.scenario} {title}".strip(),
                row.size,
                str(row.runs),
                f"{row.events:,}",
                faults,
                str(row.exports),
                str(row.lost),
                str(row.doubled),
                str(row.leaked),
                row.result,
                f"{row.seconds:.0f}",
            ]
        )
    return table


def render_markdown(rows: dict[str, ScenarioFigures]) -> str:
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(rows)]
    return "\n".join(lines)


def render_text(rows: dict[str, ScenarioFigures]) -> str:
    """A plain fixed-width table (any terminal width, any log)."""
    cells = [list(COLUMNS), *table_rows(rows)]
    widths = [max(len(row[index]) for row in cells) for index in range(len(COLUMNS))]
    lines = []
    for number, row in enumerate(cells):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)
