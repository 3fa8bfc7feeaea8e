"""``dlq show`` and ``dlq replay`` against the real broker, with letters written as ingest does."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from services.ops.dead_letters import REPLAYED_FROM, OffsetRef, Selection
from services.ops.dlq_actions import replay_dead_letters, summarize_dead_letters
from services.ops.topic_reader import TopicNotFound, TopicReader
from shared.adapters.dead_letters import (
    MAX_DEAD_LETTER_VALUE,
    dead_letter_headers,
    send_dead_letter,
)
from shared.adapters.kafka import make_producer
from shared.settings import Settings, settings_env
from tests.integration.kafka_tools import produce, read_topic

ROOT = Path(__file__).resolve().parents[2]
OVERSIZED = b'{"event_id": "big", "pad": "' + b"x" * (MAX_DEAD_LETTER_VALUE + 10) + b'"}'

# (reason, key, value) in the order they are dead-lettered: offsets 0, 1, 2, ...
LETTERS: list[tuple[str, bytes | None, bytes]] = [
    ("invalid_json", b"ws-a", b'{"event_id": "e1", '),
    ("too_far_in_future", b"ws-a", b'{"event_id": "f1", "occurred_at": "2099-01-01T00:00:00Z"}'),
    ("invalid_json", b"ws-b", b"not json at all"),
    ("invalid_event", None, b'{"event_id": "x", "type": "message"}'),
    ("too_far_in_future", b"ws-b", b'{"event_id": "f2", "occurred_at": "2099-01-02T00:00:00Z"}'),
    ("invalid_json", b"ws-c", b"\xff\xfe binary"),
    ("too_far_in_future", b"ws-c", OVERSIZED),  # kept truncated: must be refused
]


async def write_dead_letters(settings: Settings, topic: str, source: str) -> None:
    """Dead-letter LETTERS exactly as the ingest worker does (headers, truncation)."""
    producer = make_producer(settings)
    await producer.start()
    try:
        futures = []
        for offset, (reason, key, value) in enumerate(LETTERS):
            headers = dead_letter_headers(
                reason=reason,
                error=f"{reason}: test letter {offset}",
                topic=source,
                partition=offset % 3,
                offset=1000 + offset,
                original_size=len(value),
            )
            futures.append(
                await send_dead_letter(producer, topic, key=key, value=value, headers=headers)
            )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def test_show_counts_every_reason_and_lists_the_first_letters(
    fresh_settings: Settings,
) -> None:
    topic = fresh_settings.topic_events_dlq
    await write_dead_letters(fresh_settings, topic, fresh_settings.topic_events)
    summary = await summarize_dead_letters(fresh_settings, topic, limit=3)
    assert summary.total == len(LETTERS)
    counts = {reason: stats.count for reason, stats in summary.by_count()}
    assert counts == {"invalid_json": 3, "too_far_in_future": 3, "invalid_event": 1}
    assert [letter.offset for letter in summary.letters] == [0, 1, 2]
    assert summary.letters[1].key == b"ws-a"
    assert summary.reasons["too_far_in_future"].last == f"{topic}:0:6"
    truncated = await summarize_dead_letters(fresh_settings, topic, limit=len(LETTERS))
    assert truncated.letters[-1].truncated_size == len(OVERSIZED)


async def test_show_on_an_empty_topic_ends_at_once(fresh_settings: Settings) -> None:
    summary = await summarize_dead_letters(
        fresh_settings, fresh_settings.topic_export_requests_dlq, timeout_s=20
    )
    assert summary.total == 0
    with pytest.raises(TopicNotFound, match="does not exist"):
        await summarize_dead_letters(fresh_settings, "no.such.topic.anywhere", timeout_s=5)


async def test_reader_reaches_the_end_of_every_partition(fresh_settings: Settings) -> None:
    records = [(f"ws-{n % 7}".encode(), f'{{"n": {n}}}'.encode()) for n in range(40)]
    ends = await produce(fresh_settings, fresh_settings.topic_events, records)
    async with TopicReader(fresh_settings, fresh_settings.topic_events, timeout_s=30) as reader:
        assert len(reader.partitions) == fresh_settings.events_partitions
        read = [record async for batch in reader.batches() for record in batch]
    assert sorted(record.value for record in read) == sorted(value for _, value in records)
    for partition, end in ends.items():
        assert max(r.offset for r in read if r.partition == partition) == end - 1


async def test_replay_by_reason_reproduces_exactly_those_records(
    fresh_settings: Settings,
) -> None:
    topic, source = fresh_settings.topic_events_dlq, fresh_settings.topic_events
    await write_dead_letters(fresh_settings, topic, source)
    selection = Selection(reasons=frozenset({"too_far_in_future"}))

    dry = await replay_dead_letters(fresh_settings, topic, selection, dry_run=True)
    assert dry.replayed == {"too_far_in_future": 2}
    assert await read_topic(fresh_settings, source, expected=0, timeout=3) == []

    report = await replay_dead_letters(fresh_settings, topic, selection)
    assert report.scanned == len(LETTERS)
    assert report.replayed == {"too_far_in_future": 2}
    assert report.targets == {source: 2}
    assert [refusal.letter.offset for refusal in report.refused] == [6]
    assert "truncated" in report.refused[0].why

    replayed = await read_topic(fresh_settings, source, expected=2)
    expected = [(key, value) for reason, key, value in LETTERS[:6] if reason == "too_far_in_future"]
    assert sorted((r.key, r.value) for r in replayed) == sorted(expected)
    for record in replayed:
        headers = dict(record.headers)
        assert set(headers) == {REPLAYED_FROM}
        offset = 1 if record.key == b"ws-a" else 4
        assert headers[REPLAYED_FROM] == f"{topic}:0:{offset}".encode()


async def test_replay_by_offset_picks_one_letter(fresh_settings: Settings) -> None:
    topic, source = fresh_settings.topic_events_dlq, fresh_settings.topic_events
    await write_dead_letters(fresh_settings, topic, source)
    selection = Selection(offsets=frozenset({OffsetRef(3, 0)}))
    report = await replay_dead_letters(fresh_settings, topic, selection)
    assert report.replayed == {"invalid_event": 1}
    (record,) = await read_topic(fresh_settings, source, expected=1)
    assert (record.key, record.value) == (None, LETTERS[3][2])


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings_env(settings), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "services", "dlq", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_cli_show_and_replay(fresh_settings: Settings) -> None:
    topic, source = fresh_settings.topic_events_dlq, fresh_settings.topic_events
    await write_dead_letters(fresh_settings, topic, source)

    shown = await asyncio.to_thread(run_cli, fresh_settings, "show", "--json", "--limit", "2")
    assert shown.returncode == 0, shown.stderr
    document: dict[str, Any] = orjson.loads(shown.stdout)
    assert document["topic"] == topic
    assert document["total"] == len(LETTERS)
    assert {reason: item["count"] for reason, item in document["reasons"].items()} == {
        "invalid_json": 3,
        "too_far_in_future": 3,
        "invalid_event": 1,
    }
    assert [letter["offset"] for letter in document["letters"]] == [0, 1]

    table = await asyncio.to_thread(run_cli, fresh_settings, "show")
    assert table.returncode == 0, table.stderr
    assert "too_far_in_future" in table.stdout
    assert "7 dead letters by reason" in " ".join(table.stdout.split())

    refused = await asyncio.to_thread(run_cli, fresh_settings, "replay", "--offset", "6")
    assert refused.returncode == 1
    assert "truncated" in refused.stdout
    assert await read_topic(fresh_settings, source, expected=0, timeout=3) == []

    replayed = await asyncio.to_thread(
        run_cli, fresh_settings, "replay", "--reason", "invalid_json", "--json"
    )
    assert replayed.returncode == 0, replayed.stderr
    assert orjson.loads(replayed.stdout)["replayed"] == {"invalid_json": 3}
    assert len(await read_topic(fresh_settings, source, expected=3)) == 3

    nothing = await asyncio.to_thread(run_cli, fresh_settings, "replay", "--reason", "typo")
    assert nothing.returncode == 1
    assert "no dead letter matched" in nothing.stderr
