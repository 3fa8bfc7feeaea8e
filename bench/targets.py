"""The issue's targets: a figure, a bound and which side of it passes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Direction = Literal["at_least", "at_most"]


@dataclass(frozen=True, slots=True)
class Target:
    name: str  # e.g. "ingest vs faust-streaming"
    bound: float
    direction: Direction
    unit: str = ""  # e.g. "x", "MB", "s"

    def passes(self, value: float) -> bool:
        return value >= self.bound if self.direction == "at_least" else value <= self.bound

    def describe(self) -> str:
        sign = "≥" if self.direction == "at_least" else "≤"
        return f"{sign} {self.bound:g}{self.unit}"


@dataclass(frozen=True, slots=True)
class Verdict:
    """A target checked against a measured value (``None``: could not be measured)."""

    target: Target
    value: float | None
    note: str = ""

    @property
    def passed(self) -> bool | None:
        return None if self.value is None else self.target.passes(self.value)

    def as_dict(self) -> dict[str, object]:
        return {
            "target": self.target.name,
            "bound": self.target.describe(),
            "value": self.value,
            "unit": self.target.unit,
            "passed": self.passed,
            "note": self.note,
        }


# ---- the numbers (issue 12) ------------------------------------------------------
INGEST_VS_FAUST = Target("ingest throughput vs faust-streaming", 25.0, "at_least", "x")
INGEST_VS_CEILING = Target("ingest throughput vs bare aiokafka fold", 0.5, "at_least", "x")
INGEST_PEAK_RSS = Target("ingest peak RSS", 300.0, "at_most", " MB")
EXPORT_USERS_P50 = Target("12-month users export p50", 1.0, "at_most", " s")
EXPORT_FIRST = Target("first 12-month users export after ingest", 1.5, "at_most", " s")
EXPORT_VS_OLAP = Target("12-month users export vs the OLAP peer (p50 / p50)", 0.5, "at_most", "x")
EXPORT_ANY_P95 = Target("12-month export p95, every type", 1.5, "at_most", " s")
EXPORT_LARGEST = Target("100,000-user workspace's users export", 3.0, "at_most", " s")
EXPORTER_PEAK_RSS = Target("exporter peak RSS", 300.0, "at_most", " MB")
