"""Replay rebuilds chosen days exactly, leaves the rest alone, resumes, and is safe
while ingest runs."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

import pytest

from services.ingest.app import run_ingest
from services.ingest.replay import Progress, Replay
from shared import codec
from shared.adapters.s3 import ObjectStore
from shared.domain import keys
from shared.settings import Settings
from shared.simulation import SimRecord
from shared.storage.days import encode_head, parse_head
from tests.integration.kafka_tools import produce, wait_until_committed
from tests.integration.stored import stored_day_aggregates
from tests.integration.test_ingest import (
    assert_aggregates_match,
    ingest_until_committed,
    simulated,
)

ORGS = ["ws-0001", "ws-0002", "ws-0003"]


async def _damage(settings: Settings, org: str, day: date, *, drop_segments: bool) -> None:
    """Simulate a bug: a head whose aggregate is wrong (and, optionally, lost facts)."""
    async with ObjectStore(settings, settings.aggregates_bucket) as store:
        head = await store.get(keys.day_head_key(org, day))
        assert head is not None
        document, inline = parse_head(head.body)
        del document["aggregate"]
        empty = {
            "users": {},
            "payg": {},
            "agents": {},
            "agent_conversations": {},
            "api_keys": {},
            "projects": {},
            "models": [],
        }
        if drop_segments:
            document["segments"] = []
            document["facts"] = document["inline_facts"] = 0
            inline = b""
        await store.put(
            keys.day_head_key(org, day), encode_head(document, codec.dumps(empty), inline)
        )


def _days_with_activity(records: list[SimRecord]) -> list[tuple[str, date]]:
    from tests.integration.recompute import expected_days

    return sorted(expected_days(records))


async def test_replay_repairs_damaged_days_and_touches_nothing_else(
    fresh_settings: Settings, tmp_path: Path
) -> None:
    settings = fresh_settings
    records = simulated(seed=31, events=2500)
    ends = await produce(settings, settings.topic_events, ((r.key, r.value) for r in records))
    await ingest_until_committed(settings, ends)
    days = _days_with_activity(records)
    target_org, target_day = next(key for key in days if key[0] == "ws-0001")
    later = [key for key in days if key[0] == "ws-0001" and key[1] > target_day]
    second_day = later[0][1]
    await _damage(settings, target_org, target_day, drop_segments=True)
    await _damage(settings, target_org, second_day, drop_segments=False)
    before = await stored_day_aggregates(settings, ORGS)

    replay = Replay(
        settings, first_day=target_day, last_day=second_day, orgs=[target_org], work_dir=tmp_path
    )
    summary = await replay.run()

    assert summary.days_rewritten >= 2
    after = await stored_day_aggregates(settings, ORGS)
    outside = [
        key for key in before if not (key[0] == target_org and target_day <= key[1] <= second_day)
    ]
    assert outside, "the test needs days outside the replayed range"
    assert all(after[key] == before[key] for key in outside), "other days untouched"
    await assert_aggregates_match(settings, records)


async def test_replay_resumes_after_interruption(fresh_settings: Settings, tmp_path: Path) -> None:
    settings = fresh_settings
    records = simulated(seed=32, events=1500)
    ends = await produce(settings, settings.topic_events, ((r.key, r.value) for r in records))
    await ingest_until_committed(settings, ends)
    days = _days_with_activity(records)
    first, last = days[0][1], max(day for _, day in days)
    for org, day in days[:: max(1, len(days) // 5)]:
        await _damage(settings, org, day, drop_segments=True)

    class Interrupt(Exception):
        pass

    def stop_half_way(phase: str, done: int, total: int) -> None:
        if phase == "rebuild" and done >= total // 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        await Replay(
            settings,
            first_day=first,
            last_day=last,
            work_dir=tmp_path,
            progress=Progress(update=stop_half_way),
        ).run()
    resumed = Replay(settings, first_day=first, last_day=last, work_dir=tmp_path)
    summary = await resumed.run()
    assert 0 < summary.days_rewritten < len(days), "the second run only finishes the rest"
    assert summary.records_read == 0, "the topic is not read twice"
    await assert_aggregates_match(settings, records)


async def test_replay_while_ingest_runs_loses_and_doubles_nothing(
    fresh_settings: Settings, tmp_path: Path
) -> None:
    settings = fresh_settings.model_copy(
        update={"ingest_flush_interval_s": 0.2, "ingest_batch_max_records": 100}
    )
    records = simulated(seed=33, events=3000)
    half = len(records) // 2
    ends_first = await produce(
        settings, settings.topic_events, ((r.key, r.value) for r in records[:half])
    )
    await ingest_until_committed(settings, ends_first)
    days = _days_with_activity(records[:half])
    stop = asyncio.Event()
    ingest = asyncio.create_task(run_ingest(settings, stop=stop))
    try:
        producing = asyncio.create_task(
            produce(settings, settings.topic_events, ((r.key, r.value) for r in records[half:]))
        )
        replay = Replay(settings, first_day=days[0][1], last_day=days[-1][1], work_dir=tmp_path)
        await replay.run()
        ends_second = await producing
        ends = {
            p: max(ends_first.get(p, 0), ends_second.get(p, 0)) for p in {*ends_first, *ends_second}
        }
        await wait_until_committed(settings, settings.ingest_group, settings.topic_events, ends)
    finally:
        stop.set()
        await asyncio.wait_for(ingest, 60)
    await assert_aggregates_match(settings, records)
