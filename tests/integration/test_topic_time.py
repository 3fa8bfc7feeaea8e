"""Topic time that cannot lose events (issue 11, item 7).

Retention deletes a record by its timestamp. With the default ``CreateTime`` that is
whatever the producer put there: a producer back-filling last month's events stamped
with their ``occurred_at`` would see them expire before ingest reads them. The project
provisions every topic with ``message.timestamp.type=LogAppendTime`` so the broker
stamps each record when it appends it.

Apache Kafka (``USAGE_TEST_INFRA=docker``) honours that. The embedded broker (Tansu
0.6) stores the setting but keeps the producer's timestamp; the test pins that down so
the day Tansu changes, it fails and docs/operations.md ("Topic time") is updated. What
the project does instead: its own producers never set a record timestamp, so a record's
timestamp is its produce time (checked on both brokers), and Tansu's in-memory storage
deletes nothing by age anyway.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from shared.adapters.kafka import make_producer
from shared.clock import system_clock
from shared.embedded.provision import TOPIC_TIME_CONFIGS, topic_specs
from shared.settings import Settings

CREATE_TIME, LOG_APPEND_TIME = 0, 1
# An explicit producer timestamp far in the past: 2001-09-09T01:46:40Z.
OLD_MS = 1_000_000_000_000
# Broker and test read the same machine's clock; this only absorbs ms rounding.
SLACK = timedelta(seconds=2)


def _on_apache_kafka() -> bool:
    """The integration stack in use: ``docker`` is Apache Kafka, ``embedded`` is Tansu."""
    return os.environ.get("USAGE_TEST_INFRA", "embedded").strip().lower() == "docker"


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


async def _read_one(settings: Settings, topic: str) -> tuple[int, int, bytes | None]:
    """(timestamp, timestamp type, value) of the first record of partition 0."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        batch = await consumer.getmany(partition, timeout_ms=10_000)
        (record, *_) = batch[partition]
        return record.timestamp, record.timestamp_type, record.value
    finally:
        await consumer.stop()


async def test_every_topic_is_created_with_log_append_time(fresh_settings: Settings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=fresh_settings.kafka_bootstrap)
    await admin.start()
    try:
        names = [spec.name for spec in topic_specs(fresh_settings)]
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        )
    finally:
        await admin.close()
    described = {
        resource[3]: {entry[0]: entry[1] for entry in resource[4]}
        for response in responses
        for resource in response.resources
    }
    assert set(described) == set(names)
    for name in names:
        assert described[name]["message.timestamp.type"] == "LogAppendTime", name
    assert TOPIC_TIME_CONFIGS == {"message.timestamp.type": "LogAppendTime"}


async def test_an_explicit_old_timestamp_and_the_broker(fresh_settings: Settings) -> None:
    topic = fresh_settings.topic_events
    producer = make_producer(fresh_settings)
    await producer.start()
    try:
        before = system_clock()
        await producer.send_and_wait(
            topic, key=b"ws", value=b"back-filled", partition=0, timestamp_ms=OLD_MS
        )
        after = system_clock()
    finally:
        await producer.stop()
    timestamp, kind, value = await _read_one(fresh_settings, topic)
    assert value == b"back-filled"
    if _on_apache_kafka():
        # The broker's append time replaces the producer's: retention cannot cut it early.
        assert kind == LOG_APPEND_TIME
        assert _ms(before - SLACK) <= timestamp <= _ms(after + SLACK)
    else:
        # Tansu 0.6 ignores message.timestamp.type: the producer's timestamp is kept. Its
        # memory storage deletes nothing by age, and our producers never set timestamps.
        assert (timestamp, kind) == (OLD_MS, CREATE_TIME), (
            "the embedded broker now honours LogAppendTime: update docs/operations.md "
            "('Topic time') and this test"
        )


async def test_the_projects_producers_stamp_records_with_their_produce_time(
    fresh_settings: Settings,
) -> None:
    """Every producer of the project (services, simulate, demo, dlq replay, bench) is
    made by ``make_producer`` and sends without ``timestamp_ms``; on either broker the
    record's timestamp is then the moment it was produced, never an event's time."""
    topic = fresh_settings.topic_events
    producer = make_producer(fresh_settings)
    await producer.start()
    try:
        before = system_clock()
        await producer.send_and_wait(topic, key=b"ws", value=b"now", partition=0)
        after = system_clock()
    finally:
        await producer.stop()
    timestamp, kind, _ = await _read_one(fresh_settings, topic)
    assert kind == (LOG_APPEND_TIME if _on_apache_kafka() else CREATE_TIME)
    assert _ms(before - SLACK) <= timestamp <= _ms(after + SLACK)
    assert datetime.fromtimestamp(timestamp / 1000, UTC) > datetime(2001, 9, 9, 2, tzinfo=UTC)
