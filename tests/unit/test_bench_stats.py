"""bench.stats and bench.targets: the arithmetic behind every published figure."""

from __future__ import annotations

import pytest

from bench.stats import Summary, percentile
from bench.targets import INGEST_PEAK_RSS, INGEST_VS_FAUST, Target, Verdict


def test_summary_is_median_min_max_of_the_runs() -> None:
    summary = Summary.of([3.0, 1.0, 2.0, 10.0])
    assert (summary.median, summary.min, summary.max) == (2.5, 1.0, 10.0)
    assert summary.runs == (3.0, 1.0, 2.0, 10.0)
    assert summary.as_dict()["median"] == 2.5


def test_summary_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Summary.of([])


@pytest.mark.parametrize(
    ("values", "pct", "expected"),
    [
        ([5.0, 1.0, 4.0, 2.0, 3.0], 50, 3.0),
        ([5.0, 1.0, 4.0, 2.0, 3.0], 95, 5.0),
        ([5.0, 1.0, 4.0, 2.0, 3.0], 20, 1.0),
        ([7.0], 95, 7.0),
        (list(map(float, range(1, 101))), 95, 95.0),
    ],
)
def test_percentile_is_nearest_rank(values: list[float], pct: float, expected: float) -> None:
    assert percentile(values, pct) == expected


def test_percentile_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="at least one"):
        percentile([], 50)
    with pytest.raises(ValueError, match="pct"):
        percentile([1.0], 0)


def test_targets_pass_on_their_side_of_the_bound() -> None:
    assert INGEST_VS_FAUST.passes(25.0)
    assert not INGEST_VS_FAUST.passes(24.9)
    assert INGEST_PEAK_RSS.passes(300.0)
    assert not INGEST_PEAK_RSS.passes(300.1)
    assert Target("t", 3, "at_most", " s").describe() == "≤ 3 s"


def test_a_verdict_without_a_value_is_neither_pass_nor_fail() -> None:
    assert Verdict(INGEST_VS_FAUST, None).passed is None
    assert Verdict(INGEST_VS_FAUST, 30.0).as_dict()["passed"] is True
    assert Verdict(INGEST_PEAK_RSS, 512.0).as_dict()["passed"] is False
