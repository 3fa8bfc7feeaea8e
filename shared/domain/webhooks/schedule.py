"""When a failed delivery is tried again: exponential backoff with full jitter.

The n-th failure (n >= 1) waits a uniform random time in ``[0, min(max_s, base_s *
2**(n-1)))``; a delivery whose next try would fall after ``first_attempt + max_age_s``
is dead-lettered instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    base_s: float
    max_s: float
    max_age_s: float

    def ceiling_s(self, failures: int) -> float:
        """The longest wait after the ``failures``-th failure."""
        if failures < 1:
            raise ValueError("a wait follows a failure: failures >= 1")
        exponent = min(failures - 1, 62)  # 2**62 * base is past any max already
        return min(self.max_s, self.base_s * 2.0**exponent)

    def delay_s(self, failures: int, uniform: Callable[[], float]) -> float:
        """Full jitter: ``uniform() * ceiling`` (``uniform`` answers in [0, 1))."""
        return uniform() * self.ceiling_s(failures)

    def next_attempt(
        self, first_attempt: datetime, now: datetime, failures: int, uniform: Callable[[], float]
    ) -> datetime | None:
        """When to try again, or None when the delivery has run out of time."""
        at = now + timedelta(seconds=self.delay_s(failures, uniform))
        if at > first_attempt + timedelta(seconds=self.max_age_s):
            return None
        return at
