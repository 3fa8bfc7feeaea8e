"""``usage-export status`` against the embedded stack with lag, dead letters and tables."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from datetime import timedelta

import orjson
import pytest
from aiokafka import TopicPartition

from services.cli import main
from services.ops.status import gather_status
from shared.adapters.kafka import make_consumer
from shared.settings import Settings, load_settings, settings_env
from tests.clock import NOW
from tests.integration.columnar_seed import activity, seed_days, store_workspace
from tests.integration.kafka_tools import produce
from tests.integration.test_dlq_commands import LETTERS, write_dead_letters


@pytest.fixture(autouse=True)
def settings_read_anew() -> Iterator[None]:
    """The CLI reads its settings once per process (``load_settings``): each test's own."""
    load_settings.cache_clear()
    yield
    load_settings.cache_clear()


async def commit(settings: Settings, group: str, offsets: dict[TopicPartition, int]) -> None:
    consumer = make_consumer(settings, group_id=group)
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    finally:
        await consumer.stop()


async def test_status_shows_lag_dead_letters_and_newest_days(
    fresh_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = fresh_settings
    days = seed_days(3)
    await store_workspace(settings, "ws-status", activity(7, "st", 30, days), [])
    ends = await produce(settings, settings.topic_events, [(b"ws-status", b"{}")] * 6)
    partition, end = next(iter(ends.items()))
    tp = TopicPartition(settings.topic_events, partition)
    await commit(settings, settings.ingest_group, {tp: end - 4})
    await write_dead_letters(settings, settings.topic_events_dlq, settings.topic_events)

    status = await gather_status(settings)

    assert [item.reachable for item in status.reachability] == [True, True], status
    assert status.problems == []
    ingest, exporter, delivery = status.groups
    assert (ingest.group, exporter.group, delivery.group) == (
        settings.ingest_group,
        settings.exporter_group,
        settings.delivery_group,
    )
    lagging = {p.partition: p for p in ingest.partitions}[partition]
    assert (lagging.committed, lagging.end, lagging.lag) == (end - 4, end, 4)
    assert lagging.oldest_unconsumed is not None
    # The record at the committed offset was produced during this test, after NOW.
    assert lagging.oldest_unconsumed >= NOW - timedelta(seconds=5)
    assert ingest.lag == sum(ends.values()) - (end - 4)
    assert exporter.lag == 0
    assert delivery.lag == 0
    expected: dict[str, int] = {}
    for reason, _, _ in LETTERS:
        expected[reason] = expected.get(reason, 0) + 1
    assert status.dead_letters[settings.topic_events_dlq] == expected
    assert status.dead_letters[settings.topic_export_requests_dlq] == {}
    newest = {w.org_id: w.newest_day for w in status.workspaces}
    assert newest == {"ws-status": max(days)}

    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
    assert await asyncio.to_thread(main, ["status", "--json"]) == 0
    shown = orjson.loads(capsys.readouterr().out)
    assert shown["healthy"] is True
    assert shown["groups"][0]["lag"] == ingest.lag
    assert shown["workspaces"] == [{"org_id": "ws-status", "newest_day": max(days).isoformat()}]
    assert await asyncio.to_thread(main, ["status"]) == 0
    table = capsys.readouterr().out
    assert settings.ingest_group in table
    assert "ws-status" in table


def test_status_with_nothing_listening_names_what_it_tried_and_exits_3(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [name for name in os.environ if name.startswith("USAGE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("USAGE_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.setenv("USAGE_S3_ENDPOINT", "http://127.0.0.1:1")
    assert main(["status", "--json"]) == 3
    shown = orjson.loads(capsys.readouterr().out)
    assert [
        (item["what"], item["setting"], item["reachable"]) for item in shown["reachability"]
    ] == [
        ("broker", "USAGE_KAFKA_BOOTSTRAP", False),
        ("store", "USAGE_S3_ENDPOINT", False),
    ]
    assert main(["status"]) == 3
    out = capsys.readouterr()
    assert "cannot reach the broker at 127.0.0.1:1 (USAGE_KAFKA_BOOTSTRAP)" in " ".join(
        out.out.split()
    )
    assert "Traceback" not in out.out + out.err
