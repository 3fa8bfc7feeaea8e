"""Replay rebuilds chosen days exactly, leaves the rest alone, resumes, is safe while
ingest runs, and builds format-3 tables from the topic on a store that has none."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

import orjson
import pytest
from deltalake import DeltaTable

from services.ingest.app import run_ingest
from services.ingest.replay import Progress, Replay
from shared.adapters.s3 import S3ObjectStore
from shared.columnar.migration import old_format_only_workspaces
from shared.columnar.tables import FACTS_TABLE, TableStore
from shared.settings import Settings
from shared.simulation import SimRecord
from tests.integration.kafka_tools import merge_ends, produce, wait_until_committed
from tests.integration.recompute import expected_days
from tests.integration.stored import stored_day_aggregates
from tests.integration.test_ingest import (
    assert_aggregates_match,
    ingest_until_committed,
    simulated,
)

ORGS = ["ws-0001", "ws-0002", "ws-0003"]


def _facts_table(settings: Settings, org: str) -> DeltaTable:
    store = TableStore.of(settings)
    return DeltaTable(store.uri(org, FACTS_TABLE), storage_options=dict(store.options))


async def _damage(settings: Settings, org: str, day: date, *, drop_facts: bool) -> None:
    """Simulate a bug or an accident: a day's facts deleted, or its rows altered."""
    table = _facts_table(settings, org)
    where = f"day = '{day.isoformat()}'"
    if drop_facts:
        await asyncio.to_thread(table.delete, where)
    else:
        columns = ("prompt_tokens", "requests", "cost_nano", "amount_nano")
        altered = {name: f"{name} + 1" for name in columns}
        await asyncio.to_thread(table.update, altered, predicate=where)


def _days_with_activity(records: list[SimRecord]) -> list[tuple[str, date]]:
    return sorted(expected_days(records))


def _files_by_span(settings: Settings, org: str) -> dict[str, set[str]]:
    """The data files the facts table's latest commit references, by their span (a day
    ``YYYY-MM-DD``, or a month ``YYYY-MM`` the janitor merged)."""
    found: dict[str, set[str]] = {}
    for uri in _facts_table(settings, org).file_uris():
        span = uri.split("span=", 1)[1].split("/", 1)[0]
        found.setdefault(span, set()).add(uri)
    return found


def _overlaps(span: str, first: date, last: date) -> bool:
    if len(span) == len("YYYY-MM-DD"):
        return first <= date.fromisoformat(span) <= last
    return first.isoformat()[:7] <= span <= last.isoformat()[:7]


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
    await _damage(settings, target_org, target_day, drop_facts=True)
    await _damage(settings, target_org, second_day, drop_facts=False)
    before = await stored_day_aggregates(settings, ORGS)
    expected = expected_days(records)
    assert (target_org, target_day) not in before, "the first day's facts are gone"
    assert before[(target_org, second_day)] != expected[(target_org, second_day)]
    files_before = _files_by_span(settings, target_org)
    versions_before = {org: _facts_table(settings, org).version() for org in ORGS}

    replay = Replay(
        settings, first_day=target_day, last_day=second_day, orgs=[target_org], work_dir=tmp_path
    )
    summary = await replay.run()

    assert summary.workspaces == [target_org]
    assert summary.days_rewritten >= 2
    assert {f"{target_org}/{target_day}", f"{target_org}/{second_day}"} <= set(summary.days)
    after = await stored_day_aggregates(settings, ORGS)
    outside = [
        key for key in before if not (key[0] == target_org and target_day <= key[1] <= second_day)
    ]
    assert outside, "the test needs days outside the replayed range"
    assert all(after[key] == before[key] for key in outside), "other days untouched"
    files_after = _files_by_span(settings, target_org)
    untouched = {span for span in files_before if not _overlaps(span, target_day, second_day)}
    assert untouched, "the test needs stored days outside the range"
    assert all(files_after[span] == files_before[span] for span in untouched), "same files"
    target_table = _facts_table(settings, target_org)
    assert target_table.version() == versions_before[target_org] + 1, "one commit"
    assert all(
        _facts_table(settings, org).version() == versions_before[org]
        for org in ORGS
        if org != target_org
    ), "other workspaces untouched"
    await assert_aggregates_match(settings, records)


async def test_replay_resumes_after_interruption(fresh_settings: Settings, tmp_path: Path) -> None:
    settings = fresh_settings
    records = simulated(seed=32, events=1500)
    ends = await produce(settings, settings.topic_events, ((r.key, r.value) for r in records))
    await ingest_until_committed(settings, ends)
    days = _days_with_activity(records)
    first, last = days[0][1], max(day for _, day in days)
    for org, day in days[:: max(1, len(days) // 5)]:
        await _damage(settings, org, day, drop_facts=True)

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
    assert 0 < len(summary.workspaces) < len(ORGS)
    assert summary.workspaces == sorted(summary.workspaces)
    assert summary.workspaces[-1] == ORGS[-1], "it resumes with the workspaces not done"
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
        await _damage(settings, org, day, drop_facts=True)

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


def _activity_ids(records: list[SimRecord], org: str) -> set[str]:
    """The event ids of one workspace's valid activity events."""
    values = [orjson.loads(r.value) for r in records if r.kind != "invalid"]
    return {
        value["event_id"]
        for value in values
        if value["type"] in ACTIVITY and value["org_id"] == org
    }


async def test_replay_while_ingest_runs_loses_and_doubles_nothing(
    fresh_settings: Settings, tmp_path: Path
) -> None:
    """The replay reads the topic and rebuilds one workspace; ingest then writes more
    events to the days it has yet to rebuild (the replay must keep them), and more while
    it resumes (either may lose a commit race; neither may lose the other's facts)."""
    settings = fresh_settings.model_copy(
        update={"ingest_flush_interval_s": 0.2, "ingest_batch_max_records": 100}
    )
    records = simulated(seed=33, events=3000)
    half, three_quarters = len(records) // 2, 3 * len(records) // 4
    ends = await produce(settings, settings.topic_events, pairs(records[:half]))
    await ingest_until_committed(settings, ends)
    days = _days_with_activity(records[:half])
    every_day = [day for _, day in _days_with_activity(records)]
    first, last = min(every_day), max(every_day)  # the later events' days too

    class FirstWorkspaceDone(Exception):
        pass

    def stop_after_one_workspace(phase: str, done: int, total: int) -> None:
        if phase == "rebuild":
            raise FirstWorkspaceDone

    stop = asyncio.Event()
    ingest = asyncio.create_task(run_ingest(settings, stop=stop))
    try:
        started = Replay(
            settings,
            first_day=first,
            last_day=last,
            work_dir=tmp_path,
            progress=Progress(update=stop_after_one_workspace),
        )
        with pytest.raises(FirstWorkspaceDone):  # read the topic as it was (the first
            await started.run()  # half), and rebuild one workspace
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
    assert len(started.summary.workspaces) == 1
    rebuilt = started.summary.workspaces + summary.workspaces
    assert sorted(rebuilt) == ORGS, "each workspace once"
    assert summary.workspaces_rewritten == len(summary.workspaces) == len(ORGS) - 1
    rewritten = [tuple(tag.split("/")) for tag in started.summary.days + summary.days]
    assert len(set(rewritten)) == len(rewritten), "each day once"
    assert {(org, day.isoformat()) for org, day in days} <= set(rewritten)
    assert all(first.isoformat() <= day <= last.isoformat() for _, day in rewritten)
    # Every fact ingest wrote after the read into the workspaces rebuilt afterwards was kept.
    written_between = {
        (org, event_id)
        for org in summary.workspaces
        for event_id in _activity_ids(between, org) - _activity_ids(records[:half], org)
    }
    assert written_between, "the test needs events ingested between read and rebuild"
    assert summary.kept_from_store >= len(written_between)
    await assert_aggregates_match(settings, records)


async def test_replay_builds_format_3_from_the_topic_on_an_old_format_store(
    fresh_settings: Settings, tmp_path: Path
) -> None:
    """The migration path (docs/storage.md): a store holding only older state is
    refused; replay over the topic's days builds the format-3 tables, exactly."""
    settings = fresh_settings
    records = simulated(seed=35, events=1200)
    await produce(settings, settings.topic_events, pairs(records))
    async with S3ObjectStore(settings, settings.aggregates_bucket) as store:
        await store.put("v1/orgs/ws-0001/days/2020-01-01/head.json", b"{}")
        assert await old_format_only_workspaces(store) == ["ws-0001"]
    days = _days_with_activity(records)
    first, last = min(day for _, day in days), max(day for _, day in days)

    summary = await Replay(settings, first_day=first, last_day=last, work_dir=tmp_path).run()

    assert summary.facts_before == summary.kept_from_store == 0
    assert sorted(summary.workspaces) == ORGS
    assert summary.days_rewritten == len(days)
    await assert_aggregates_match(settings, records)
    async with S3ObjectStore(settings, settings.aggregates_bucket) as store:
        assert await old_format_only_workspaces(store) == []
