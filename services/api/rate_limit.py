"""A token bucket per API key, in this process (so the limit is per API replica).

Each key may burst up to ``per_minute`` requests and regains ``per_minute / 60`` a
second. A refused request learns how long until the next token (``Retry-After``).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable


class RateLimiter:
    def __init__(
        self,
        per_minute: int,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._capacity = float(per_minute)
        self._per_second = per_minute / 60.0
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    def acquire(self, key: str) -> int | None:
        """None when the request may go ahead, else the seconds to wait (≥ 1)."""
        now = self._clock()
        tokens, at = self._buckets.get(key, (self._capacity, now))
        tokens = min(self._capacity, tokens + (now - at) * self._per_second)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)  # a full bucket by now, most likely
        if allowed:
            return None
        return max(1, math.ceil((1.0 - tokens) / self._per_second))
