"""The one clock: every reading of "now" in the services and the tests goes through here.

Time is an input. A service takes a ``Clock`` as a keyword argument (default
``system_clock``) and never calls ``datetime.now`` itself, so tests can pin it, and a
whole run can be moved in time with libfaketime (``scripts/test-clock.sh``) without a
test mixing a literal date with the wall clock. Durations (timeouts, deadlines, rate
limits) use ``time.monotonic``, which is not a date and is unaffected by either.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

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


#: Test-only: a file holding an ISO 8601 instant that a service's clock reads at every
#: call instead of the wall clock (``clock_from_environment``). Only the service runners
#: that document it honour it (the scheduler); it exists so that an integration test can
#: move a *subprocess's* time, which ``fixed_clock`` cannot reach. Never set in production.
TEST_CLOCK_FILE_VARIABLE = "USAGE_TEST_CLOCK_FILE"


def file_clock(path: Path) -> Clock:
    """A clock answering the instant written in ``path`` (re-read at every call)."""

    def read() -> datetime:
        instant = datetime.fromisoformat(path.read_text(encoding="utf-8").strip())
        if instant.tzinfo is None:
            raise ValueError(f"{path} must hold an aware ISO 8601 instant")
        return instant.astimezone(UTC)

    return read


def clock_from_environment(environ: Mapping[str, str] | None = None) -> Clock:
    """``system_clock``, unless ``USAGE_TEST_CLOCK_FILE`` names a file (tests only)."""
    path = (os.environ if environ is None else environ).get(TEST_CLOCK_FILE_VARIABLE)
    return system_clock if not path else file_clock(Path(path))
