"""Simulated workloads, produced once into a benchmark's own topic."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from bench.kafka_io import Ends, produce, records_in
from shared.settings import Settings
from shared.simulation import SimConfig, SimRecord, simulate

#: Sees every record as it is produced (e.g. :class:`bench.olap.Landing`).
Tap = Callable[[SimRecord], None]


@dataclass
class Produced:
    """What a topic holds after :func:`produce_simulation`."""

    ends: Ends
    kinds: Counter[str] = field(default_factory=Counter)  # valid / duplicate / invalid
    types: Counter[str] = field(default_factory=Counter)  # event types, duplicates included
    seconds: float = 0.0

    @property
    def records(self) -> int:
        return records_in(self.ends)

    def as_dict(self) -> dict[str, object]:
        return {
            "records": self.records,
            "kinds": dict(self.kinds),
            "types": dict(self.types),
            "produce_seconds": round(self.seconds, 2),
        }


def _tally(
    config: SimConfig, now: datetime, produced: Produced, tap: Tap | None
) -> Iterator[tuple[bytes, bytes]]:
    kinds, types = produced.kinds, produced.types
    for record in simulate(config, now=now):
        kinds[record.kind] += 1
        types[record.event_type] += 1
        if tap is not None:
            tap(record)
        yield record.key, record.value


async def produce_simulation(
    settings: Settings, configs: list[SimConfig], *, now: datetime, tap: Tap | None = None
) -> Produced:
    """Produce each simulated stream into ``settings.topic_events`` (one after another);
    ``tap`` sees every record, in the order produced."""
    produced = Produced(ends={})
    began = time.monotonic()
    for config in configs:
        records = _tally(config, now, produced, tap)
        ends = await produce(settings, settings.topic_events, records)
        for partition, end in ends.items():
            produced.ends[partition] = max(produced.ends.get(partition, 0), end)
    produced.seconds = time.monotonic() - began
    return produced
