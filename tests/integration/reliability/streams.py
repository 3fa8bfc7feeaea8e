"""Simulated event streams and a producer that spreads them over time.

A :class:`Dataset` is a simulated stream (duplicates, late and out-of-order events, some
invalid) plus the instants that make its exports deterministic: it ends ``END_MARGIN``
before it was generated, and its export window ends a quarter hour after its last event,
so no export ever clamps to "now".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.adapters.kafka import make_producer
from shared.clock import system_clock
from shared.settings import Settings
from shared.simulation import SimConfig, SimRecord, simulate
from tests.reference import EventLog, build_log

END_MARGIN = timedelta(minutes=30)
KafkaRecord = tuple[bytes | None, bytes | None]


@dataclass(frozen=True)
class Dataset:
    records: list[SimRecord]
    generated_at: datetime
    start: datetime
    end: datetime

    @property
    def orgs(self) -> list[str]:
        return sorted({r.org_id for r in self.records if r.kind != "invalid"})

    @property
    def kafka_records(self) -> list[KafkaRecord]:
        return [(record.key, record.value) for record in self.records]

    def count(self, kind: str) -> int:
        return sum(1 for record in self.records if record.kind == kind)

    def reference_log(self, extra: Sequence[bytes] = ()) -> EventLog:
        """The oracle's deduplicated log of this stream (then ``extra``), in arrival order."""
        values = [record.value for record in self.records]
        return build_log([*values, *extra], valid_at=self.generated_at)


def simulated(
    seed: int,
    events: int,
    *,
    orgs: int = 3,
    days: float = 364.0,
    dup_rate: float = 0.06,
    late_rate: float = 0.05,
    invalid_rate: float = 0.0,
    org_prefix: str = "ws",
    users: int = 40,
) -> Dataset:
    generated_at = system_clock()
    end = generated_at - END_MARGIN
    config = SimConfig(
        seed=seed,
        orgs=orgs,
        events=events,
        end=end,
        days=days,
        dup_rate=dup_rate,
        late_rate=late_rate,
        invalid_rate=invalid_rate,
        org_prefix=org_prefix,
        users=users,
    )
    return Dataset(
        records=list(simulate(config)),
        generated_at=generated_at,
        start=end - timedelta(days=days),
        end=end,
    )


@dataclass
class Progress:
    """How far a paced production got (read by fault injectors running beside it)."""

    total: int
    produced: int = 0
    ends: dict[int, int] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def fraction(self) -> float:
        return self.produced / self.total if self.total else 1.0

    async def reached(self, fraction: float, poll_s: float = 0.2) -> None:
        """Until ``fraction`` of the records are produced (or production ended)."""
        while self.fraction < fraction and not self.done.is_set():  # noqa: ASYNC110 - polls a counter
            await asyncio.sleep(poll_s)


async def produce_paced(
    settings: Settings,
    topic: str,
    records: Sequence[KafkaRecord],
    *,
    duration_s: float = 0.0,
    chunk: int = 2000,
    progress: Progress | None = None,
    hurry: asyncio.Event | None = None,
) -> dict[int, int]:
    """Produce ``records`` in order, in chunks spread evenly over about ``duration_s``
    (as fast as possible when 0, or once ``hurry`` is set); returns partition -> end
    offset from the acks."""
    progress = progress if progress is not None else Progress(total=len(records))
    producer = make_producer(settings, max_request_size=16 * 1024 * 1024, linger_ms=20)
    await producer.start()
    started = time.monotonic()
    chunks = max(1, -(-len(records) // chunk))
    try:
        for index in range(chunks):
            part = records[index * chunk : (index + 1) * chunk]
            futures = [await producer.send(topic, key=key, value=value) for key, value in part]
            for metadata in await asyncio.gather(*futures):
                progress.ends[metadata.partition] = max(
                    progress.ends.get(metadata.partition, 0), metadata.offset + 1
                )
            progress.produced += len(part)
            if duration_s and not (hurry is not None and hurry.is_set()):
                due = started + duration_s * (index + 1) / chunks
                await asyncio.sleep(max(0.0, due - time.monotonic()))
        return dict(progress.ends)
    finally:
        progress.done.set()
        await producer.stop()


async def records_between(
    settings: Settings, topic: str, starts: dict[int, int], ends: dict[int, int]
) -> list[bytes]:
    """The values of ``topic`` from ``starts`` (inclusive) to ``ends`` (exclusive), per
    partition: e.g. what a restarted consumer reads again after the last commit."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        wanted = {
            TopicPartition(topic, partition): (starts.get(partition, 0), end)
            for partition, end in ends.items()
            if end > starts.get(partition, 0)
        }
        if not wanted:
            return []
        consumer.assign(list(wanted))
        for tp, (start, _) in wanted.items():
            consumer.seek(tp, start)
        values: list[bytes] = []
        remaining = set(wanted)
        deadline = time.monotonic() + 120.0
        while remaining:
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic}: could not read up to {ends} from {starts}")
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batch.items():
                end = wanted[tp][1]
                values += [r.value for r in records if r.offset < end and r.value is not None]
                if records and records[-1].offset + 1 >= end:
                    remaining.discard(tp)
        return values
    finally:
        await consumer.stop()


async def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """The end (high watermark) of every partition of ``topic`` now."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        await consumer.topics()  # loads the metadata partitions_for_topic reads
        partitions = [
            TopicPartition(topic, partition)
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        ends = await consumer.end_offsets(partitions)
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()
