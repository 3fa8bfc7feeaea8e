"""Dead letters: the original key and value, plus headers saying why and where from."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer

#: Values larger than this are dead-lettered truncated (header ``value.truncated``):
#: the broker's own message size limit would refuse the whole value.
MAX_DEAD_LETTER_VALUE = 900 * 1024


def dead_letter_headers(
    *, reason: str, error: str, topic: str, partition: int, offset: int, original_size: int
) -> list[tuple[str, bytes]]:
    headers = [
        ("error", error.encode("utf-8", "replace")[:2000]),
        ("error.reason", reason.encode()),
        ("source.topic", topic.encode()),
        ("source.partition", str(partition).encode()),
        ("source.offset", str(offset).encode()),
    ]
    if original_size > MAX_DEAD_LETTER_VALUE:
        headers.append(("value.truncated", str(original_size).encode()))
    return headers


def headers_for_record(record: Any, *, reason: str, error: str) -> list[tuple[str, bytes]]:
    """:func:`dead_letter_headers` for an aiokafka ``ConsumerRecord``, which says where it
    came from and how large its value was."""
    return dead_letter_headers(
        reason=reason,
        error=error,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        original_size=len(record.value) if record.value is not None else 0,
    )


async def send_dead_letter(
    producer: AIOKafkaProducer,
    dlq_topic: str,
    *,
    key: bytes | None,
    value: bytes | None,
    headers: list[tuple[str, bytes]],
) -> asyncio.Future[Any]:
    """Queue a dead letter; the returned future resolves once the broker acknowledged it."""
    body = (
        value
        if value is None or len(value) <= MAX_DEAD_LETTER_VALUE
        else value[:MAX_DEAD_LETTER_VALUE]
    )
    future: asyncio.Future[Any] = await producer.send(
        dlq_topic, key=key, value=body, headers=headers
    )
    return future
