"""How far ingest has got: ``ingestedThrough`` (contract §4), an instant T such that every
event appended to the events topic before T is in the tables an export reads after it.

Ingest commits a partition's offset only once every event before it is durable in the
tables (contract §2), and the topic stamps records with the broker's append time
(``message.timestamp.type=LogAppendTime``, contract §1), which never decreases along a
partition. So for a partition whose committed offset ``c`` is below its log end, every
record appended before the append time of the record at ``c`` is below ``c``: ingested.
A partition whose committed offset reaches the log end read *after* an instant ``now``
has ingested every record appended before ``now``. T is the least of these over the
topic's partitions. Offsets only grow and the tables are read after T is taken, so an
export counts at least every event appended before T.

With producer timestamps (``CreateTime``) instead, T is only as good as the producers'
clocks: the definition assumes append times (docs/contract.md §4).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Protocol

from aiokafka import TopicPartition

from shared.adapters.kafka import make_consumer
from shared.adapters.kafka_offsets import end_offsets, timestamp_at, wait_assigned
from shared.clock import Clock, system_clock
from shared.domain.window import to_ms
from shared.lifecycle import StartStopContext
from shared.lru import LruMap
from shared.settings import Settings

log = logging.getLogger(__name__)


class ProgressSource(Protocol):
    """What an exporter asks: T now (:class:`IngestProgress`; fakes in tests)."""

    async def through(self) -> datetime: ...


def ingested_through(
    now_ms: int,
    ends: Mapping[int, int],
    committed: Mapping[int, int | None],
    appended_ms: Mapping[int, int | None],
) -> int:
    """T in milliseconds: ``now_ms`` (taken before ``ends``, the partitions' log ends, were
    read), or the least ``appended_ms`` of the records at the ``committed`` offsets of the
    partitions whose offset is below their end. Raises LookupError when such a record's
    time is unknown (no T can be told)."""
    through = now_ms
    for partition, end in ends.items():
        if (committed.get(partition) or 0) >= end:
            continue
        appended = appended_ms.get(partition)
        if appended is None:
            raise LookupError(f"partition {partition}: no record at its committed offset")
        through = min(through, appended)
    return through


class IngestProgress(StartStopContext):
    """Reads the ingest group's committed offsets (without joining it) and the events
    topic's log ends and record times (group-less), for :func:`ingested_through`."""

    def __init__(self, settings: Settings, *, clock: Clock = system_clock) -> None:
        self._settings = settings
        self._clock = clock
        self._reader = make_consumer(settings, group_id=None, fetch_max_wait_ms=50)
        self._offsets = make_consumer(settings, group_id=settings.ingest_group)
        self._partitions: list[TopicPartition] = []
        self._lock = asyncio.Lock()  # one consumer: one look-up at a time
        # A record's append time never changes: while ingest stands still (or lags on a
        # partition without committing), repeated exports look nothing up again. Caught
        # up, T costs ~5 ms (log ends, committed offsets); each look-up costs a fetch.
        self._appended: LruMap[tuple[int, int], int] = LruMap(4096)

    async def start(self) -> None:
        await self._reader.start()
        await self._offsets.start()

    async def stop(self) -> None:
        await self._offsets.stop()
        await self._reader.stop()

    async def through(self) -> datetime:
        """T, as an aware UTC datetime (raises the broker's errors and TimeoutError)."""
        async with self._lock:
            now = self._clock()
            await self._assign_every_partition()
            ends = await end_offsets(self._reader, self._partitions)
            committed: dict[int, int | None] = {}
            appended: dict[int, int | None] = {}
            for tp in self._partitions:
                offset = await self._offsets.committed(tp)
                committed[tp.partition] = offset
                if (offset or 0) < ends[tp]:
                    appended[tp.partition] = await self._appended_at(tp, offset or 0)
            ends_by_partition = {tp.partition: end for tp, end in ends.items()}
        through = ingested_through(to_ms(now), ends_by_partition, committed, appended)
        return datetime.fromtimestamp(through / 1000, UTC)

    async def _assign_every_partition(self) -> None:
        """The topic's partitions: assigned at first use (the exporter may start before the
        topic exists), then compared each time with the client's metadata, so that a
        partition added since counts (an event on it could otherwise be appended before T
        without being counted). The metadata is the client's cache, refreshed every
        ``metadata.max.age.ms`` (5 minutes) and on errors: a metadata request per export
        serialized every export behind the broker (exports with a 3 s deadline missed
        it in the fault suite)."""
        topic = self._settings.topic_events
        if self._partitions:
            known = self._reader.partitions_for_topic(topic) or set()
            if known == {tp.partition for tp in self._partitions}:
                return
        self._partitions = await wait_assigned(self._reader, topic, timeout_s=5.0)

    async def _appended_at(self, tp: TopicPartition, offset: int) -> int | None:
        key = (tp.partition, offset)
        known = self._appended.get(key)
        if known is None:
            known = await timestamp_at(self._reader, tp, offset)
            if known is not None:
                self._appended.put(key, known)
        return known
