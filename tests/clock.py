"""The tests' one "now".

Every test that needs the current instant takes it from here (or from the ``now`` and
``clock`` fixtures of ``tests/conftest.py``, which read it from here): the instant this
test session started, read ONCE through :func:`shared.clock.system_clock`. Nothing else
in the tests reads the wall clock, so a run moved in time with libfaketime
(``scripts/test-clock.sh``) moves every date of every test together, and a test never
mixes a literal date with the real one.

Unit tests pin the services to it (``fixed_clock(NOW)``). Integration tests run against
servers that keep the real clock: their dates are derived from ``NOW`` too (a window
ending today, a day 40 days back, a retention cutoff), never written as literals, and the
services they start read ``system_clock`` — within the session's length of ``NOW``.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from shared.clock import Clock, fixed_clock, system_clock

NOW: Final[datetime] = system_clock()
"""When this test session started (aware, UTC)."""

TODAY: Final[date] = NOW.date()
"""The UTC day of :data:`NOW`."""


def clock() -> Clock:
    """A clock pinned at :data:`NOW`, for services under test."""
    return fixed_clock(NOW)


def today_in(zone: str) -> date:
    """The local day of :data:`NOW` in ``zone`` (an IANA name)."""
    return NOW.astimezone(ZoneInfo(zone)).date()


def days_ago(days: int) -> date:
    """The UTC day ``days`` before :data:`TODAY`."""
    return TODAY - timedelta(days=days)


def month_start(day: date, months_back: int = 0) -> date:
    """The first day of ``day``'s month, ``months_back`` calendar months earlier."""
    index = day.year * 12 + day.month - 1 - months_back
    return date(index // 12, index % 12 + 1, 1)
