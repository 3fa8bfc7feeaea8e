"""When activity happens: a working-hours, working-days rhythm with a growth trend.

The span is cut into hours, each with an intensity (weekday mornings busy, weekend
nights quiet, later months busier); event *i* of *n* lands at the point where the
cumulative intensity reaches ``(i + u) / n``. So events come out in time order at
constant cost per event, with no sorting and no buffering.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from itertools import accumulate

_HOUR_MS = 3_600_000
_DAY_HOURS = 24
# UTC hour-of-day weights: workspaces span time zones, so nights are quiet, not empty.
_DIURNAL = (
    0.25, 0.2, 0.2, 0.25, 0.35, 0.5, 0.8, 1.1, 1.4, 1.6, 1.7, 1.6,
    1.5, 1.6, 1.7, 1.6, 1.4, 1.2, 1.0, 0.8, 0.6, 0.5, 0.4, 0.3,
)  # fmt: skip
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0)


class ActivityClock:
    """Instants of ``count`` events following the intensity profile, in time order."""

    def __init__(self, start_ms: int, end_ms: int, count: int, rng: random.Random) -> None:
        self.start_ms, self.end_ms, self.count = start_ms, end_ms, count
        self.random = rng.random
        # Buckets of (nearly) one hour that tile the span exactly.
        buckets = max(1, round((end_ms - start_ms) / _HOUR_MS))
        self.bucket_ms = (end_ms - start_ms) / buckets
        weights = []
        for bucket in range(buckets):
            at = start_ms + int(bucket * self.bucket_ms)
            hour_of_day = (at // _HOUR_MS) % _DAY_HOURS
            weekday = (at // (_HOUR_MS * _DAY_HOURS) + _EPOCH_WEEKDAY) % 7
            weekly = 0.35 if weekday >= 5 else 1.0
            growth = 0.7 + 0.6 * bucket / buckets
            weights.append(_DIURNAL[hour_of_day] * weekly * growth)
        self.weights = weights
        self.cum = list(accumulate(weights))

    def instants(self) -> Iterator[int]:
        """Event *i* lands where the cumulative intensity reaches ``(i + u) / count``.

        Targets strictly increase with *i*, so one forward-moving bucket pointer finds
        each one: constant time per event.
        """
        if self.count <= 0:
            return
        rnd, cum, weights = self.random, self.cum, self.weights
        scale = cum[-1] / self.count
        last = len(cum) - 1
        start, bucket_ms, final = self.start_ms, self.bucket_ms, self.end_ms - 1
        bucket, before, upto, weight = 0, 0.0, cum[0], weights[0]
        for rank in range(self.count):
            target = (rank + rnd()) * scale
            while target >= upto and bucket < last:
                bucket += 1
                before, upto, weight = upto, cum[bucket], weights[bucket]
            within = min(max((target - before) / weight, 0.0), 0.999999)
            at = start + int((bucket + within) * bucket_ms)
            yield at if at < final else final
