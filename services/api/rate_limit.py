"""Token buckets in this process (so every limit is per API replica).

:class:`RateLimiter`: each API key may burst up to ``per_minute`` requests and regains
``per_minute / 60`` a second; every request takes a token. :class:`FailureLimiter`: the
same bucket, but an attempt takes a token that a success gives back, so only failures
use it up, and a name whose bucket is empty is refused *before* the work (a key check).
A refused request learns how long until the next token (``Retry-After``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from shared.lru import LruMap


class _Buckets:
    """``name → (tokens, at)``, refilled lazily, bounded (least recently used dropped)."""

    def __init__(self, per_minute: int, *, max_keys: int, clock: Callable[[], float]) -> None:
        self.capacity = float(per_minute)
        self.per_second = per_minute / 60.0
        self._clock = clock
        # Least recently stored dropped first: a full bucket by now, most likely.
        self._buckets: LruMap[str, tuple[float, float]] = LruMap(max_keys)  # tokens, at

    def tokens(self, key: str) -> tuple[float, float]:
        """The bucket's tokens now, and now."""
        now = self._clock()
        tokens, at = self._buckets.get(key, (self.capacity, now))
        return min(self.capacity, tokens + (now - at) * self.per_second), now

    def store(self, key: str, tokens: float, now: float) -> None:
        self._buckets.put(key, (tokens, now))

    def wait_s(self, tokens: float) -> int:
        """Seconds until ``tokens`` grows to one (≥ 1)."""
        return max(1, math.ceil((1.0 - tokens) / self.per_second))


class RateLimiter:
    def __init__(
        self,
        per_minute: int,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._buckets = _Buckets(per_minute, max_keys=max_keys, clock=clock)

    def acquire(self, key: str) -> int | None:
        """None when the request may go ahead, else the seconds to wait (≥ 1)."""
        tokens, now = self._buckets.tokens(key)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets.store(key, tokens, now)
        return None if allowed else self._buckets.wait_s(tokens)


# Same constructor as RateLimiter on purpose: the two are configured side by side.
class FailureLimiter:
    """``limiter.take(name)`` before an attempt that may fail, ``limiter.refund(name)``
    when it did not: only failures use up the bucket, and attempts running at once can
    never overdraw it."""

    def __init__(
        self,
        per_minute: int,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self._buckets = _Buckets(per_minute, max_keys=max_keys, clock=clock)

    def take(self, key: str) -> int | None:
        """None when an attempt may be made (a token is taken), else the seconds until
        one may (≥ 1)."""
        tokens, now = self._buckets.tokens(key)
        if tokens < 1.0:
            return self._buckets.wait_s(tokens)
        self._buckets.store(key, tokens - 1.0, now)
        return None

    def refund(self, key: str) -> None:
        """The attempt succeeded: give its token back."""
        tokens, now = self._buckets.tokens(key)
        self._buckets.store(key, min(self._buckets.capacity, tokens + 1.0), now)
