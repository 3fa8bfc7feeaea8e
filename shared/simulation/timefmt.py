"""Fast RFC 3339 rendering of millisecond instants with varied UTC offsets.

``datetime.isoformat`` costs a few microseconds per call, a large share of the
simulator's per-event budget; integer arithmetic plus a per-day cache does the same
in well under one.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

# (suffix, minutes east of UTC). "Z" dominates; the rest are real offsets, including
# half- and quarter-hour ones, to exercise "same instant, different wall clock".
OFFSETS: tuple[tuple[str, int], ...] = (
    ("+05:30", 330), ("-03:30", -210), ("+01:00", 60), ("-08:00", -480), ("+05:45", 345),
    ("+09:00", 540), ("+00:00", 0), ("-05:00", -300), ("+13:00", 780), ("+02:00", 120),
)  # fmt: skip


# "MM:" for each minute, "SS.mmm" for each millisecond of a minute, "SS" for each second.
_MINUTES = tuple(f"{minute:02d}:" for minute in range(60))
_SECOND_MILLIS = tuple(f"{ms // 1000:02d}.{ms % 1000:03d}" for ms in range(60_000))
_SECONDS = tuple(f"{second:02d}" for second in range(60))


class TimestampRenderer:
    """Renders instants; ``render_varied`` picks an offset and a precision at random."""

    __slots__ = ("_hours", "_random", "_z_share")

    def __init__(self, rng: random.Random, z_share: float = 0.8) -> None:
        self._hours: dict[int, str] = {}  # hours since the epoch -> "YYYY-MM-DDTHH:"
        self._random = rng.random
        self._z_share = z_share

    def _hour(self, hour: int) -> str:
        text = self._hours.get(hour)
        if text is None:
            day, hour_of_day = divmod(hour, 24)
            text = f"{date.fromordinal(_EPOCH_ORDINAL + day).isoformat()}T{hour_of_day:02d}:"
            if len(self._hours) > 100_000:  # bounded: a year is under 9,000 hours
                self._hours.clear()
            self._hours[hour] = text
        return text

    def render(
        self, at_ms: int, suffix: str = "Z", offset_min: int = 0, millis: bool = True
    ) -> str:
        local = at_ms + offset_min * 60_000
        hour, rest = divmod(local, 3_600_000)
        minute, rest = divmod(rest, 60_000)
        seconds = _SECOND_MILLIS[rest] if millis else _SECONDS[rest // 1000]
        return self._hour(hour) + _MINUTES[minute] + seconds + suffix

    def render_varied(self, at_ms: int) -> tuple[str, int]:
        """(text, instant in ms it denotes): mostly ``Z``, some offsets, some whole seconds."""
        roll = self._random()
        if roll < self._z_share:
            return self.render(at_ms), at_ms
        suffix, offset = OFFSETS[int(roll * 1_000_003) % len(OFFSETS)]
        if roll > 0.97:  # whole seconds, no fraction: the instant drops its milliseconds
            at_ms -= at_ms % 1000
            return self.render(at_ms, suffix, offset, millis=False), at_ms
        return self.render(at_ms, suffix, offset), at_ms


def iso_date(at_ms: int) -> str:
    return (date(1970, 1, 1) + timedelta(milliseconds=at_ms)).isoformat()
