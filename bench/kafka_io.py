"""Kafka plumbing of the benchmarks: produce fast, and watch a group's committed offsets.

End offsets come from produce acknowledgements: the embedded broker's
ListOffsets(latest) is not reliable.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Self

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.adapters.kafka import make_producer
from shared.settings import Settings

Ends = dict[int, int]
_CHUNK = 20_000


def merge_ends(into: Ends, partition: int, offset: int) -> None:
    into[partition] = max(into.get(partition, 0), offset + 1)


def records_in(ends: Ends) -> int:
    """Records in a topic written once from offset 0 (the benchmarks' own topics)."""
    return sum(ends.values())


async def produce(
    settings: Settings,
    topic: str,
    records: Iterable[tuple[bytes, bytes]],
    *,
    progress: Callable[[int], None] | None = None,
) -> Ends:
    """Send every ``(key, value)``; returns partition -> end offset (last offset + 1).

    Sends are batched by the producer (``linger_ms``); their futures are awaited in
    chunks so that memory stays flat however many records there are.
    """
    producer = make_producer(
        settings, linger_ms=50, max_batch_size=1024 * 1024, max_request_size=8 * 1024 * 1024
    )
    await producer.start()
    ends: Ends = {}
    sent = 0
    try:
        pending: list[asyncio.Future[Any]] = []
        for key, value in records:
            pending.append(await producer.send(topic, key=key, value=value))
            if len(pending) >= _CHUNK:
                sent += await _settle(pending, ends)
                if progress is not None:
                    progress(sent)
        sent += await _settle(pending, ends)
        if progress is not None:
            progress(sent)
        return ends
    finally:
        await producer.stop()


async def _settle(pending: list[asyncio.Future[Any]], ends: Ends) -> int:
    count = len(pending)
    for metadata in await asyncio.gather(*pending):
        merge_ends(ends, metadata.partition, metadata.offset)
    pending.clear()
    return count


class CommitWatcher:
    """Reads a consumer group's committed offsets (without joining the group)."""

    def __init__(self, settings: Settings, group: str, topic: str) -> None:
        self._topic = topic
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap, group_id=group, enable_auto_commit=False
        )

    async def __aenter__(self) -> Self:
        await self._consumer.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._consumer.stop()

    async def committed(self, partitions: Iterable[int]) -> Ends:
        result: Ends = {}
        for partition in partitions:
            offset = await self._consumer.committed(TopicPartition(self._topic, partition))
            result[partition] = offset or 0
        return result

    async def wait_for(
        self,
        ends: Ends,
        *,
        timeout_s: float,
        poll_s: float = 0.25,
        alive: Callable[[], bool] = lambda: True,
    ) -> float:
        """Wait until every partition's commit reaches ``ends``; returns ``time.time()``
        then. Raises ``TimeoutError`` past ``timeout_s`` and ``RuntimeError`` when
        ``alive()`` turns false (the consumer under test died)."""
        deadline = time.monotonic() + timeout_s
        while True:
            done = await self.committed(ends)
            if all(done[partition] >= end for partition, end in ends.items()):
                return time.time()
            if not alive():
                raise RuntimeError(f"the consumer exited before committing {ends} (at {done})")
            if time.monotonic() > deadline:
                raise TimeoutError(f"committed {done} after {timeout_s:.0f} s, expected {ends}")
            await asyncio.sleep(poll_s)
