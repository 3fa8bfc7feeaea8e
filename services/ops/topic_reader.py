"""Read a whole topic, from its beginning to its end as of the start of the read.

The end cannot come from ListOffsets(latest): the embedded broker (Tansu) answers with
about the last batch's base offset there. The high watermark in each fetch response is
right, so a partition's end is the first high watermark a fetch reports for it, and the
partition is done once the consumer's position reaches that end. Records produced while
reading are left for the next read, so a busy topic cannot keep a read going forever.
No consumer group: reading commits nothing and disturbs no service.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.adapters.kafka import make_consumer
from shared.errors import RetriableError, UsageExportError
from shared.lifecycle import StartStopContext
from shared.settings import Settings


class TopicNotFound(UsageExportError):
    """The broker does not know the topic (a typo, or it was never created)."""


class TopicReadTimeout(RetriableError):
    """Some partitions did not reach their end in time (broker slow or unreachable)."""


class TopicReader(StartStopContext):
    """``async with TopicReader(settings, topic) as reader: async for batch in reader.batches()``.

    Batches are lists of aiokafka ``ConsumerRecord``, in offset order per partition.
    """

    def __init__(
        self,
        settings: Settings,
        topic: str,
        *,
        timeout_s: float = 60.0,
        poll_ms: int = 300,
        max_records: int = 2_000,
    ) -> None:
        self.topic = topic
        self._settings = settings
        self._timeout_s = timeout_s
        self._poll_ms = poll_ms
        self._max_records = max_records
        self._consumer: AIOKafkaConsumer | None = None
        self.partitions: list[TopicPartition] = []
        #: partition -> end offset (exclusive), once a fetch has told it.
        self.ends: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        # A short fetch wait: an empty partition answers (with its high watermark) quickly.
        consumer = make_consumer(self._settings, group_id=None, fetch_max_wait_ms=200)
        self._consumer = consumer
        try:
            await consumer.start()
            # Bootstrap metadata covers every topic that existed when the consumer started.
            partitions = consumer.partitions_for_topic(self.topic)
            if not partitions:
                raise TopicNotFound(
                    f"topic {self.topic!r} does not exist on {self._settings.kafka_bootstrap}"
                )
            self.partitions = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            consumer.assign(self.partitions)
            await consumer.seek_to_beginning(*self.partitions)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            # aiokafka: a group-less consumer stopped before its coordinator task first ran
            # lets that task's CancelledError escape from stop(); one loop turn avoids it.
            await asyncio.sleep(0)
            await consumer.stop()

    async def batches(self) -> AsyncIterator[list[Any]]:
        """Every record up to each partition's end; raises :class:`TopicReadTimeout`."""
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError("TopicReader is not started: use `async with`")
        remaining = set(self.partitions)
        deadline = time.monotonic() + self._timeout_s
        while remaining:
            if time.monotonic() > deadline:
                pending = sorted(tp.partition for tp in remaining)
                raise TopicReadTimeout(
                    f"{self.topic}: partitions {pending} did not reach their end within "
                    f"{self._timeout_s:g} s"
                )
            fetched = await consumer.getmany(
                *remaining, timeout_ms=self._poll_ms, max_records=self._max_records
            )
            batch: list[Any] = []
            for tp, records in sorted(fetched.items(), key=lambda item: item[0].partition):
                end = self._end_of(consumer, tp)
                batch.extend(r for r in records if end is None or r.offset < end)
            for tp in list(remaining):
                end = self._end_of(consumer, tp)
                if end is not None and await consumer.position(tp) >= end:
                    remaining.discard(tp)
                    consumer.pause(tp)  # nothing past the end is wanted: stop fetching it
            if batch:
                yield batch
            else:
                await asyncio.sleep(0)

    def _end_of(self, consumer: AIOKafkaConsumer, tp: TopicPartition) -> int | None:
        """The partition's end: the first high watermark seen, fixed for this read."""
        if tp not in self.ends:
            highwater = consumer.highwater(tp)
            if highwater is None:
                return None
            self.ends[tp] = highwater
        return self.ends[tp]
