"""Thin aiokafka wiring: every client is built from :class:`Settings` in one place, and
connects as :func:`~shared.adapters.kafka_connection.connection_options` says (TLS, SASL)."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.adapters.kafka_connection import connection_options
from shared.settings import Settings


def producer_options(settings: Settings) -> dict[str, Any]:
    """Options for a producer that loses nothing: acks from all replicas, retries.

    Idempotence is on for real Kafka and off for the embedded broker (it has no
    InitProducerId); duplicates a retry may cause are harmless because every consumer
    deduplicates by id.
    """
    return {
        "acks": "all",
        "enable_idempotence": settings.kafka_idempotence,
        "linger_ms": 5,
        "max_request_size": 2 * 1024 * 1024,
        "request_timeout_ms": 30_000,
    }


def make_producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    options = producer_options(settings) | overrides
    return AIOKafkaProducer(**(connection_options(settings) | options))


def make_consumer(
    settings: Settings, *topics: str, group_id: str | None, **overrides: Any
) -> AIOKafkaConsumer:
    """A manually-committing consumer (offsets are committed only after durable state)."""
    options: dict[str, Any] = {
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.kafka_session_timeout_ms,
        "heartbeat_interval_ms": settings.kafka_heartbeat_interval_ms,
        "max_poll_interval_ms": settings.kafka_max_poll_interval_ms,
        "fetch_max_bytes": 64 * 1024 * 1024,
        "max_partition_fetch_bytes": 8 * 1024 * 1024,
        "isolation_level": "read_uncommitted",
    }
    return AIOKafkaConsumer(*topics, **(connection_options(settings) | options | overrides))
