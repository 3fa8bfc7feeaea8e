"""Log positions that work on Apache Kafka and on brokers that answer ListOffsets wrongly.

The embedded broker (Tansu) answers ListOffsets(latest) with roughly the last batch's
base offset and ListOffsets(timestamp) with 0, while the high watermark in fetch
responses is right. So: take the larger of the API's end offset and the fetched high
watermark; take the API's offset for a time, check it against the records around it,
and bisect by fetching records when the check fails.
"""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, TopicPartition


async def end_offsets(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], *, timeout_s: float = 10.0
) -> dict[TopicPartition, int]:
    """The current log end offset of each (assigned) partition."""
    reported: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
    for tp in partitions:
        consumer.seek(tp, reported[tp])
    deadline = time.monotonic() + timeout_s
    while any(consumer.highwater(tp) is None for tp in partitions):
        if time.monotonic() > deadline:
            missing = [tp.partition for tp in partitions if consumer.highwater(tp) is None]
            raise TimeoutError(f"no fetch response for partitions {missing}")
        await consumer.getmany(*partitions, timeout_ms=200, max_records=1)
    return {tp: max(reported[tp], consumer.highwater(tp) or 0) for tp in partitions}


async def timestamp_at(
    consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int, timeout_s: float = 10.0
) -> int | None:
    """Timestamp of the first record at or after ``offset`` (None past the end)."""
    consumer.seek(tp, offset)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        batch = await consumer.getmany(tp, timeout_ms=300, max_records=1)
        records = batch.get(tp)
        if records:
            return int(records[0].timestamp)
        highwater = consumer.highwater(tp)
        if highwater is not None and offset >= highwater:
            return None
    raise TimeoutError(f"no record at {tp.topic}[{tp.partition}]@{offset}")


async def offset_for_time(
    consumer: AIOKafkaConsumer, tp: TopicPartition, timestamp_ms: int, end: int
) -> int:
    """The first offset whose record timestamp is ≥ ``timestamp_ms`` (``end`` if none).

    Timestamps are producer clocks, so only roughly ordered: callers subtract a margin.
    """
    if end == 0:
        return 0
    answer = (await consumer.offsets_for_times({tp: timestamp_ms})).get(tp)
    if answer is not None and await _is_first_at_or_after(
        consumer, tp, answer.offset, timestamp_ms
    ):
        return int(answer.offset)
    low, high = 0, end  # invariant: records before `low` are earlier; `high` qualifies
    while low < high:
        middle = (low + high) // 2
        stamp = await timestamp_at(consumer, tp, middle)
        if stamp is None or stamp >= timestamp_ms:
            high = middle
        else:
            low = middle + 1
    return low


async def _is_first_at_or_after(
    consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int, timestamp_ms: int
) -> bool:
    at = await timestamp_at(consumer, tp, offset)
    if at is None or at < timestamp_ms:
        return False
    if offset == 0:
        return True
    before = await timestamp_at(consumer, tp, offset - 1)
    return before is not None and before < timestamp_ms


async def wait_assigned(
    consumer: AIOKafkaConsumer, topic: str, timeout_s: float = 10.0
) -> list[TopicPartition]:
    """Assign every partition of ``topic`` (no consumer group) and return them."""
    deadline = time.monotonic() + timeout_s
    while True:
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {topic} has no partitions (does it exist?)")
        await consumer.topics()  # refreshes metadata
        await asyncio.sleep(0.1)
    assigned = [TopicPartition(topic, partition) for partition in sorted(partitions)]
    consumer.assign(assigned)
    return assigned
