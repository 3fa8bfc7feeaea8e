"""Full-jitter backoff of webhook retries: bounds, growth, cap, and the dead line."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from shared.domain.webhooks.schedule import RetrySchedule

SCHEDULE = RetrySchedule(base_s=5.0, max_s=3600.0, max_age_s=24 * 3600.0)
START = datetime(2026, 3, 1, tzinfo=UTC)


def test_ceilings_double_from_the_base_up_to_the_cap() -> None:
    ceilings = [SCHEDULE.ceiling_s(n) for n in range(1, 13)]
    assert ceilings[:4] == [5.0, 10.0, 20.0, 40.0]
    assert ceilings[-1] == 3600.0
    assert all(a <= b for a, b in itertools.pairwise(ceilings))
    assert SCHEDULE.ceiling_s(10_000) == 3600.0  # no overflow however many failures
    with pytest.raises(ValueError, match="failures >= 1"):
        SCHEDULE.ceiling_s(0)


@pytest.mark.parametrize("failures", [1, 2, 5, 9, 30])
def test_full_jitter_spans_zero_to_the_ceiling(failures: int) -> None:
    ceiling = SCHEDULE.ceiling_s(failures)
    assert SCHEDULE.delay_s(failures, lambda: 0.0) == 0.0
    assert SCHEDULE.delay_s(failures, lambda: 0.5) == pytest.approx(ceiling / 2)
    assert ceiling * 0.99 <= SCHEDULE.delay_s(failures, lambda: 0.999999) < ceiling


def test_a_try_past_the_maximum_age_is_none() -> None:
    late = START + timedelta(hours=23, minutes=59)
    assert SCHEDULE.next_attempt(START, late, 20, lambda: 0.0) == late
    assert SCHEDULE.next_attempt(START, late, 20, lambda: 0.5) is None
    early = START + timedelta(seconds=1)
    assert SCHEDULE.next_attempt(START, early, 1, lambda: 0.5) == early + timedelta(seconds=2.5)
