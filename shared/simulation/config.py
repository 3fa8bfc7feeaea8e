"""What to simulate: one frozen config; the same config always yields the same bytes."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from shared.clock import Clock, system_clock


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Knobs of a simulated usage stream.

    ``events`` is the number of distinct *valid* events over all workspaces (dimension
    events included); duplicates and invalid events come on top, so the stream holds
    about ``events * (1 + dup_rate + invalid_rate)`` records. When the workspaces' own
    upserts outnumber ``events`` they are all still emitted.

    ``end`` defaults to the present instant of the clock (``shared.clock``) and
    ``start`` to ``end - days``. The default span is 364 days rather than 365 so that a
    stream ingested hours after it was generated still has every event inside ingest's
    12-month limit; a longer span produces early events that ingest rightly
    dead-letters as too old.

    Entity counts are per workspace. ``byok_share`` and ``private_share`` decide the
    workspaces after the first three, which are fixed so that small runs cover every
    case: ``ws-0001`` is BYOK (it switches to BYOK a third of the way in),
    ``ws-0002`` is not BYOK and never sends settings, ``ws-0003`` turns user-level data
    off half-way.
    """

    seed: int = 0
    orgs: int = 3
    events: int = 10_000
    start: datetime | None = None
    end: datetime | None = None
    days: float = 364.0
    users: int = 40
    agents: int = 8
    projects: int = 6
    api_keys: int = 4
    models: int = 6
    dup_rate: float = 0.05
    late_rate: float = 0.02
    invalid_rate: float = 0.0
    byok_share: float = 0.5
    private_share: float = 0.2
    org_prefix: str = "ws"

    def __post_init__(self) -> None:
        for name in ("dup_rate", "late_rate", "invalid_rate", "byok_share", "private_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")
        for name in ("orgs", "users", "models"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("events", "agents", "projects", "api_keys"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.days <= 0:
            raise ValueError("days must be positive")
        for name in ("start", "end"):
            moment = getattr(self, name)
            if moment is not None and moment.utcoffset() is None:
                raise ValueError(f"{name} must be timezone-aware")

    def resolved(self, now: datetime | None = None, *, clock: Clock = system_clock) -> SimConfig:
        """This config with ``start``/``end`` filled in (``end`` defaults to ``now``, or
        else to the clock's present instant)."""
        end = self.end or now or clock()
        start = self.start or end - timedelta(days=self.days)
        if start >= end:
            raise ValueError("start must be before end")
        return replace(self, start=start.astimezone(UTC), end=end.astimezone(UTC))

    @property
    def start_ms(self) -> int:
        return _ms(self.start)

    @property
    def end_ms(self) -> int:
        return _ms(self.end)


def _ms(moment: datetime | None) -> int:
    if moment is None:
        raise ValueError("call SimConfig.resolved() first")
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
