"""Summaries of repeated measurements: median, min and max; nearest-rank percentiles."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Summary:
    """The runs of one figure, and their median, minimum and maximum."""

    runs: tuple[float, ...]
    median: float
    min: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        if not values:
            raise ValueError("a summary needs at least one value")
        runs = tuple(float(value) for value in values)
        return cls(runs=runs, median=statistics.median(runs), min=min(runs), max=max(runs))

    def as_dict(self) -> dict[str, object]:
        return {"median": self.median, "min": self.min, "max": self.max, "runs": list(self.runs)}


def percentile(values: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile: the smallest value with ``pct`` % at or below it.

    With 5 runs, p50 is the 3rd smallest and p95 the largest: no interpolation between
    runs that did not happen.
    """
    if not values:
        raise ValueError("a percentile needs at least one value")
    if not 0 < pct <= 100:
        raise ValueError(f"pct must be within (0, 100], got {pct}")
    ordered = sorted(values)
    rank = math.ceil(pct / 100 * len(ordered))
    return float(ordered[rank - 1])
