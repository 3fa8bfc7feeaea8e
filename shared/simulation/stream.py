"""The simulated stream: dimension and activity events merged in time, then disordered
the way real producers disorder them — late arrivals, re-sent duplicates, bad input.

* **Late**: a valid event is held back and released once the stream's clock has moved
  on by an exponential delay (mean 3 days, 1 hour to 45 days), so it arrives after
  many later events.
* **Duplicate**: after an event, with ``dup_rate``, an earlier record is re-sent with
  identical key and bytes — usually a recent one (a producer retry), sometimes one from
  anywhere before (an archive replay).
* **Invalid**: with ``invalid_rate``, a malformed event tagged with its reason.

Memory is constant apart from the entity tables and the dimension schedule: a bounded
ring and reservoir for duplicates and a heap of events in flight for lateness.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Literal, NamedTuple

from shared import codec
from shared.simulation.activity import ActivityGenerator
from shared.simulation.config import SimConfig
from shared.simulation.dimensions import Scheduled, workspace_schedule
from shared.simulation.invalid import InvalidFactory
from shared.simulation.timeline import ActivityClock
from shared.simulation.world import DAY_MS, Workspace, build_world

Kind = Literal["valid", "duplicate", "invalid"]
_RING = 1024
_RESERVOIR = 2048
_HOUR_MS = 3_600_000
_new = tuple.__new__
_NEVER = 2**62


class SimRecord(NamedTuple):
    """One Kafka record of the stream: ``key`` is the org id, ``value`` the JSON bytes."""

    key: bytes
    value: bytes
    kind: Kind
    reason: str | None  # the invalid-event category, None otherwise
    org_id: str
    event_type: str  # the event's type (for invalid ones, the type it started from)


def stream_tag(seed: int) -> str:
    """Prefix of every event id of a seed, so streams of different seeds never collide."""
    return format(random.Random(f"{seed}:tag").getrandbits(24), "06x")


def dimension_schedule(config: SimConfig, world: list[Workspace]) -> list[Scheduled]:
    tag = stream_tag(config.seed)
    schedule = [item for ws in world for item in workspace_schedule(ws, config, tag)]
    schedule.sort(key=lambda item: (item.at_ms, item.org_id, item.seq))
    return schedule


def _ordered_events(
    config: SimConfig, world: list[Workspace], rng: random.Random, activity: ActivityGenerator
) -> Iterator[tuple[int, Workspace, str, bytes]]:
    """Valid events in time order: (instant ms, workspace, type, encoded value)."""
    by_org = {ws.org_id: ws for ws in world}
    schedule = dimension_schedule(config, world)
    count = max(0, config.events - len(schedule))
    clock = ActivityClock(config.start_ms, config.end_ms, count, rng)
    dumps = codec.dumps
    position, pending = 0, len(schedule)
    next_dim_at = schedule[0].at_ms if schedule else _NEVER
    next_event = activity.next_event
    for at_ms in clock.instants():
        while at_ms >= next_dim_at:
            item = schedule[position]
            position += 1
            next_dim_at = schedule[position].at_ms if position < pending else _NEVER
            yield item.at_ms, by_org[item.org_id], item.type, dumps(item.event)
        ws, kind, event = next_event(at_ms)
        yield at_ms, ws, kind, dumps(event)
    for item in schedule[position:]:
        yield item.at_ms, by_org[item.org_id], item.type, dumps(item.event)


def simulate(config: SimConfig, *, now: datetime | None = None) -> Iterator[SimRecord]:
    """The record stream of ``config`` (``end`` defaults to ``now``, else the clock)."""
    config = config.resolved(now)
    world = build_world(config)
    rng = random.Random(f"{config.seed}:stream")
    rnd, expovariate = rng.random, rng.expovariate
    tag = stream_tag(config.seed)
    activity = ActivityGenerator(world, rng, tag)
    invalid = InvalidFactory(activity, random.Random(f"{config.seed}:invalid"), tag, config.end_ms)
    keys = {ws.org_id: ws.org_id.encode() for ws in world}
    dup_rate, late_rate, invalid_rate = config.dup_rate, config.late_rate, config.invalid_rate
    late: list[tuple[int, int, SimRecord]] = []
    ring: list[SimRecord] = []
    reservoir: list[SimRecord] = []
    remembered = 0
    held = itertools.count()  # heap tie-break: release order = hold order

    for at_ms, ws, kind, value in _ordered_events(config, world, rng, activity):
        org_id = ws.org_id
        # tuple.__new__ skips NamedTuple's Python-level __new__: this loop is hot.
        record = _new(SimRecord, (keys[org_id], value, "valid", None, org_id, kind))
        outs: Sequence[SimRecord] = (record,)
        if late and late[0][0] <= at_ms:
            released = []
            while late and late[0][0] <= at_ms:
                released.append(heapq.heappop(late)[2])
            outs = [*released, record]
        if late_rate and rnd() < late_rate:
            delay = min(45 * DAY_MS, _HOUR_MS + int(expovariate(1.0) * 3 * DAY_MS))
            heapq.heappush(late, (at_ms + delay, next(held), record))
            outs = outs[:-1]
        for out in outs:
            yield out
            if dup_rate:
                # Remember one record in eight: retaining every record costs more than
                # making it (allocator churn), and a sample serves duplicates as well.
                if rnd() < 0.125:
                    if remembered < _RING:
                        ring.append(out)
                    else:
                        ring[remembered % _RING] = out
                    if remembered < _RESERVOIR:
                        reservoir.append(out)
                    else:  # reservoir sampling: a uniform sample of everything remembered
                        slot = int(rnd() * remembered)
                        if slot < _RESERVOIR:
                            reservoir[slot] = out
                    remembered += 1
                if rnd() < dup_rate and ring:
                    pool = ring if rnd() < 0.7 else reservoir
                    yield pool[int(rnd() * len(pool))]._replace(kind="duplicate")
            if invalid_rate and rnd() < invalid_rate:
                bad, reason, bad_kind = invalid.make(ws, at_ms)
                yield SimRecord(keys[org_id], bad, "invalid", reason, org_id, bad_kind)
    while late:
        record = heapq.heappop(late)[2]
        yield record
