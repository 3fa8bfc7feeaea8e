"""The one clock: every reading of "now" in the services and the tests goes through here.

Time is an input. A service takes a ``Clock`` as a keyword argument (default
``system_clock``) and never calls ``datetime.now`` itself, so tests can pin it, and a
whole run can be moved in time with libfaketime (``scripts/test-clock.sh``) without a
test mixing a literal date with the wall clock. Durations (timeouts, deadlines, rate
limits) use ``time.monotonic``, which is not a date and is unaffected by either.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]
"""Returns the current instant as an aware UTC ``datetime``."""


def system_clock() -> datetime:
    """The wall clock, in UTC (the only place the services read it)."""
    return datetime.now(UTC)


def fixed_clock(instant: datetime) -> Clock:
    """A clock that always answers ``instant`` (tests)."""
    if instant.tzinfo is None:
        raise ValueError("a clock answers aware instants")
    pinned = instant.astimezone(UTC)
    return lambda: pinned
