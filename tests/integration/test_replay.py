"""Replay rebuilds chosen days exactly, leaves the rest alone, resumes, and is safe
while ingest runs."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from pathlib import Path

import orjson
import pytest

from services.ingest.app import run_ingest
from services.ingest.replay import Progress, Replay
from shared import codec
from shared.adapters.s3 import ObjectStore
from shared.domain import keys
from shared.settings import Settings
from shared.simulation import SimRecord
from shared.storage.days import encode_head, parse_head
from tests.integration.kafka_tools import merge_ends, produce, wait_until_committed
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


async def test_replay_resumes_when_its_read_ended_unrecorded(
    fresh_settings: Settings, tmp_path: Path
) -> None:
    """Stopped after its last spill but before it recorded that the read was done, a
    replay resumes without reading the topic again (nor starting a consumer for nothing)."""
    settings = fresh_settings
    records = simulated(seed=34, events=600)
    ends = await produce(settings, settings.topic_events, pairs(records))
    await ingest_until_committed(settings, ends)
    days = _days_with_activity(records)
    first, last = days[0][1], max(day for _, day in days)
    damaged = days[:: max(1, len(days) // 3)]
    for org, day in damaged:
        await _damage(settings, org, day, drop_segments=True)

    class ReadToTheEnd(Exception):
        pass

    def stop_at_the_end_of_the_read(phase: str, done: int, total: int) -> None:
        if phase == "read" and done == total:
            raise ReadToTheEnd

    with pytest.raises(ReadToTheEnd):
        await Replay(
            settings,
            first_day=first,
            last_day=last,
            work_dir=tmp_path,
            progress=Progress(update=stop_at_the_end_of_the_read),
        ).run()
    summary = await Replay(settings, first_day=first, last_day=last, work_dir=tmp_path).run()
    assert summary.records_read == 0, "the topic is not read twice"
    rebuilt = {tuple(tag.split("/")) for tag in summary.days}
    assert {(org, str(day)) for org, day in damaged} <= rebuilt
    await assert_aggregates_match(settings, records)


ACTIVITY = {"message", "api_request", "payg_consumption"}


def pairs(records: list[SimRecord]) -> list[tuple[bytes | None, bytes]]:
    return [(r.key, r.value) for r in records]


def _activity_ids(
    records: list[SimRecord], org: str | None = None, day: date | None = None
) -> set[str]:
    """The event ids of the valid activity events (of one workspace and UTC day if given)."""
    values = [orjson.loads(r.value) for r in records if r.kind != "invalid"]
    return {
        value["event_id"]
        for value in values
        if value["type"] in ACTIVITY
        and (org is None or value["org_id"] == org)
        and (
            day is None
            or datetime.fromisoformat(value["occurred_at"]).astimezone(UTC).date() == day
        )
    }


async def test_replay_while_ingest_runs_loses_and_doubles_nothing(
    fresh_settings: Settings, tmp_path: Path
) -> None:
    """The replay reads the topic and rebuilds one day; ingest then writes more events to
    the days it has yet to rebuild (the replay must keep them), and more while it resumes
    (either may lose an ``If-Match`` race; neither may lose the other's facts)."""
    settings = fresh_settings.model_copy(
        update={"ingest_flush_interval_s": 0.2, "ingest_batch_max_records": 100}
    )
    records = simulated(seed=33, events=3000)
    half, three_quarters = len(records) // 2, 3 * len(records) // 4
    ends = await produce(settings, settings.topic_events, pairs(records[:half]))
    await ingest_until_committed(settings, ends)
    days = _days_with_activity(records[:half])
    first, last = min(day for _, day in days), max(day for _, day in days)

    class FirstDayDone(Exception):
        pass

    def stop_after_one_day(phase: str, done: int, total: int) -> None:
        if phase == "rebuild":
            raise FirstDayDone

    stop = asyncio.Event()
    ingest = asyncio.create_task(run_ingest(settings, stop=stop))
    try:
        started = Replay(
            settings,
            first_day=first,
            last_day=last,
            work_dir=tmp_path,
            progress=Progress(update=stop_after_one_day),
        )
        with pytest.raises(FirstDayDone):  # read the topic as it was (the first half), and
            await started.run()  # rebuild one day
        between = records[half:three_quarters]  # ingested after the read, before the rebuild
        more = records[three_quarters:]  # produced while the replay rebuilds
        ends = merge_ends(ends, await produce(settings, settings.topic_events, pairs(between)))
        await wait_until_committed(settings, settings.ingest_group, settings.topic_events, ends)
        producing = asyncio.create_task(produce(settings, settings.topic_events, pairs(more)))
        resumed = Replay(settings, first_day=first, last_day=last, work_dir=tmp_path)
        summary = await resumed.run()
        ends = merge_ends(ends, await producing)
        await wait_until_committed(settings, settings.ingest_group, settings.topic_events, ends)
    finally:
        stop.set()
        await asyncio.wait_for(ingest, 60)

    assert summary.records_read == 0, "the resumed replay does not read the topic again"
    assert len(started.summary.days) == 1
    rewritten = [tuple(tag.split("/")) for tag in started.summary.days + summary.days]
    assert len(set(rewritten)) == len(rewritten), "each day once"
    assert summary.days_rewritten == len(summary.days) == len(rewritten) - 1
    assert {(org, day.isoformat()) for org, day in days} <= set(rewritten)
    assert all(first.isoformat() <= day <= last.isoformat() for _, day in rewritten)
    # Every fact ingest wrote after the read into the days rebuilt afterwards was kept.
    written_between = {
        event_id
        for org, day in rewritten[1:]
        for event_id in _activity_ids(between, org, date.fromisoformat(day))
    } - _activity_ids(records[:half])
    assert written_between, "the test needs events ingested between read and rebuild"
    assert summary.kept_from_store >= len(written_between)
    await assert_aggregates_match(settings, records)
