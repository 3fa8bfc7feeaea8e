"""Test helpers on the real broker: produce and remember end offsets, wait for commits,
read a topic to its end. End offsets come from produce acknowledgements (the embedded
broker's ListOffsets(latest) is not reliable)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.adapters.kafka import make_producer
from shared.settings import Settings


async def produce(
    settings: Settings, topic: str, records: Iterable[tuple[bytes | None, bytes]]
) -> dict[int, int]:
    """Send every record; returns partition -> end offset (last offset + 1)."""
    producer = make_producer(settings, max_request_size=16 * 1024 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(topic, key=key, value=value) for key, value in records]
        ends: dict[int, int] = {}
        for metadata in await asyncio.gather(*futures):
            ends[metadata.partition] = max(ends.get(metadata.partition, 0), metadata.offset + 1)
        return ends
    finally:
        await producer.stop()


def merge_ends(*ends: dict[int, int]) -> dict[int, int]:
    merged: dict[int, int] = {}
    for item in ends:
        for partition, offset in item.items():
            merged[partition] = max(merged.get(partition, 0), offset)
    return merged


async def committed(
    settings: Settings, group: str, topic: str, partitions: Iterable[int]
) -> dict[int, int]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        result = {}
        for partition in partitions:
            offset = await consumer.committed(TopicPartition(topic, partition))
            result[partition] = offset or 0
        return result
    finally:
        await consumer.stop()


async def wait_until_committed(
    settings: Settings, group: str, topic: str, ends: dict[int, int], *, timeout: float = 90.0
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        done = await committed(settings, group, topic, ends)
        if all(done[partition] >= end for partition, end in ends.items()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"group {group} committed {done}, expected {ends}")
        await asyncio.sleep(0.5)


async def read_topic(
    settings: Settings, topic: str, *, expected: int, timeout: float = 30.0
) -> list[Any]:
    """Every record of ``topic`` from the beginning, once ``expected`` have arrived
    (returns what is there after ``timeout`` or a short idle period past ``expected``)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        partitions = await consumer._client._wait_on_metadata(topic)
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        await consumer.seek_to_beginning()
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        idle_rounds = 0
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            fetched = [record for part in batch.values() for record in part]
            records.extend(fetched)
            idle_rounds = 0 if fetched else idle_rounds + 1
            if len(records) >= expected and idle_rounds >= 2:
                break
        return records
    finally:
        await consumer.stop()
