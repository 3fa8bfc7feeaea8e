"""Ingest against the real broker and store: exact aggregates, dead letters, crashes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from services.ingest.app import run_ingest
from shared.clock import system_clock
from shared.settings import Settings, settings_env
from shared.simulation import SimConfig, SimRecord, simulate
from tests.integration.kafka_tools import (
    committed,
    merge_ends,
    produce,
    read_topic,
    wait_until_committed,
)
from tests.integration.recompute import expected_days
from tests.integration.stored import stored_day_aggregates, stored_dimension_event_ids

_DIMENSION_KINDS = {
    "user_upserted": "users",
    "agent_upserted": "agents",
    "project_upserted": "projects",
    "api_key_upserted": "api_keys",
    "workspace_settings": "settings",
}


def simulated(seed: int, events: int, **overrides: Any) -> list[SimRecord]:
    config = SimConfig(
        seed=seed,
        orgs=3,
        events=events,
        dup_rate=0.06,
        late_rate=0.05,
        end=system_clock(),
        **overrides,
    )
    return list(simulate(config))


async def assert_aggregates_match(settings: Settings, records: list[SimRecord]) -> None:
    expected = expected_days(records)
    orgs = sorted({record.org_id for record in records if record.kind != "invalid"})
    actual = await stored_day_aggregates(settings, orgs)
    assert set(actual) == set(expected)
    mismatched = [key for key in expected if actual[key] != expected[key]]
    assert not mismatched, (
        f"{len(mismatched)} days differ, first {mismatched[0]}: "
        f"{actual[mismatched[0]]} != {expected[mismatched[0]]}"
    )
    for org in orgs:
        for event_type, kind in _DIMENSION_KINDS.items():
            wanted = {
                orjson.loads(r.value)["event_id"]
                for r in records
                if r.kind != "invalid"
                and r.org_id == org
                and orjson.loads(r.value)["type"] == event_type
            }
            assert await stored_dimension_event_ids(settings, org, kind) == wanted


async def ingest_until_committed(settings: Settings, ends: dict[int, int]) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(run_ingest(settings, stop=stop))
    try:
        await wait_until_committed(settings, settings.ingest_group, settings.topic_events, ends)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def test_stream_with_duplicates_late_and_invalid_events_is_exact(
    fresh_settings: Settings,
) -> None:
    settings = fresh_settings
    records = simulated(seed=21, events=3000, invalid_rate=0.04)
    kinds = Counter(record.kind for record in records)
    assert kinds["duplicate"] > 50
    assert kinds["invalid"] > 50
    ends = await produce(
        settings, settings.topic_events, ((record.key, record.value) for record in records)
    )
    await ingest_until_committed(settings, ends)
    await assert_aggregates_match(settings, records)

    invalid = [record for record in records if record.kind == "invalid"]
    dead = await read_topic(settings, settings.topic_events_dlq, expected=len(invalid))
    assert sorted(r.value[:1000] for r in dead) == sorted(r.value[:1000] for r in invalid)
    assert sorted(r.key or b"" for r in dead) == sorted(r.key or b"" for r in invalid)
    for letter in dead:
        headers = dict(letter.headers)
        assert headers["error"], "every dead letter says why"
        assert headers["source.topic"] == settings.topic_events.encode()


async def test_events_produced_again_later_change_nothing(fresh_settings: Settings) -> None:
    settings = fresh_settings
    records = simulated(seed=5, events=1500)
    ends = await produce(
        settings, settings.topic_events, ((record.key, record.value) for record in records)
    )
    await ingest_until_committed(settings, ends)
    before = await stored_day_aggregates(settings, ["ws-0001", "ws-0002", "ws-0003"])
    # An archive re-produced: same events, new offsets.
    ends = await produce(
        settings, settings.topic_events, ((record.key, record.value) for record in records)
    )
    await ingest_until_committed(settings, ends)
    after = await stored_day_aggregates(settings, ["ws-0001", "ws-0002", "ws-0003"])
    assert after == before
    await assert_aggregates_match(settings, records)


def _start_ingest_process(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    env = os.environ | settings_env(settings) | {"PYTHONUNBUFFERED": "1"}
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "services", "ingest", "--log-level", "WARNING"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


async def _wait_committed_while_alive(
    settings: Settings,
    ends: dict[int, int],
    process: subprocess.Popen[bytes],
    log_path: Path,
    timeout: float,
) -> None:
    waiting = asyncio.create_task(
        wait_until_committed(
            settings, settings.ingest_group, settings.topic_events, ends, timeout=timeout
        )
    )
    while not waiting.done():
        if process.poll() is not None:
            waiting.cancel()
            raise AssertionError(
                f"ingest exited with {process.returncode}: {log_path.read_text()[-3000:]}"
            )
        await asyncio.sleep(0.2)
    await waiting


async def _wait_committed_past(
    settings: Settings,
    floor: dict[int, int],
    process: subprocess.Popen[bytes],
    log_path: Path,
    timeout: float,
) -> None:
    """Until the group commits past ``floor`` on some partition (fails if ``process`` exits
    or nothing more is committed within ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise AssertionError(
                f"ingest exited with {process.returncode}: {log_path.read_text()[-3000:]}"
            )
        done = await committed(settings, settings.ingest_group, settings.topic_events, floor)
        if any(done[partition] > offset for partition, offset in floor.items()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"ingest committed nothing past {floor} in {timeout:g} s")
        await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_sigkill_mid_stream_then_restart_is_exact(
    fresh_settings: Settings, tmp_path: Path
) -> None:
    settings = fresh_settings.model_copy(
        update={"ingest_flush_interval_s": 0.3, "ingest_batch_max_records": 200}
    )
    records = simulated(seed=99, events=6000, invalid_rate=0.02)
    half = len(records) // 2
    ends_first = await produce(
        settings, settings.topic_events, ((r.key, r.value) for r in records[:half])
    )
    log_path = tmp_path / "ingest.log"
    process = _start_ingest_process(settings, log_path)
    try:
        # Let it commit some of the stream, then kill it without warning while it works.
        await _wait_committed_while_alive(
            settings,
            {p: min(end, 50) for p, end in ends_first.items()},
            process,
            log_path,
            timeout=60,
        )
        floor = await committed(settings, settings.ingest_group, settings.topic_events, ends_first)
        more, rest = records[half : 3 * len(records) // 4], records[3 * len(records) // 4 :]
        ends_task = asyncio.create_task(
            produce(settings, settings.topic_events, ((r.key, r.value) for r in more))
        )
        # Once it commits again while more is produced (it is working), freeze it where it
        # is: SIGSTOP is as abrupt as a kill, and nothing of it runs until the SIGKILL.
        await _wait_committed_past(settings, floor, process, log_path, timeout=60)
        process.send_signal(signal.SIGSTOP)
        ends = merge_ends(await ends_task)
        # The rest arrives while it cannot read: the kill surely leaves work to recover.
        ends = merge_ends(
            ends, await produce(settings, settings.topic_events, ((r.key, r.value) for r in rest))
        )
        process.send_signal(signal.SIGKILL)
        assert await asyncio.to_thread(process.wait, 30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    merged = merge_ends(ends_first, ends)
    at_kill = await committed(settings, settings.ingest_group, settings.topic_events, merged)
    assert any(at_kill[p] < end for p, end in merged.items()), (
        f"the kill fell after the whole stream was committed ({at_kill}): nothing to recover"
    )
    restarted = _start_ingest_process(settings, log_path)
    try:
        await _wait_committed_while_alive(settings, merged, restarted, log_path, timeout=120)
    finally:
        restarted.send_signal(signal.SIGTERM)
        status = restarted.wait(timeout=60)
    assert status == 0, log_path.read_text()[-3000:]
    await assert_aggregates_match(settings, records)


async def test_an_id_produced_again_with_another_time_counts_once(
    fresh_settings: Settings,
) -> None:
    """The contract dedups an (org_id, event_id) across the whole retention: an event
    re-stamped on retry (another hour, day or month, other figures) changes nothing; the
    first version applied wins."""
    settings = fresh_settings
    records = simulated(seed=17, events=1500)
    ends = await produce(
        settings, settings.topic_events, ((record.key, record.value) for record in records)
    )
    await ingest_until_committed(settings, ends)
    orgs = sorted({record.org_id for record in records if record.kind != "invalid"})
    before = await stored_day_aggregates(settings, orgs)
    now = system_clock()
    restamped: list[tuple[bytes | None, bytes]] = []
    shifts = [timedelta(hours=-3), timedelta(days=-2), timedelta(days=-40), timedelta(days=-200)]
    activity = [
        r for r in records if r.kind == "valid" and r.event_type in ("message", "api_request")
    ]
    for number, record in enumerate(activity[:400]):
        event = orjson.loads(record.value)
        occurred = datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00"))
        moved = occurred + shifts[number % len(shifts)]
        moved = min(max(moved, now - timedelta(days=360)), now - timedelta(minutes=5))
        event["occurred_at"] = moved.isoformat().replace("+00:00", "Z")
        if event.get("usage"):
            event["usage"]["prompt_tokens"] = event["usage"].get("prompt_tokens", 0) + 7
        restamped.append((record.key, orjson.dumps(event)))
    assert len(restamped) == 400, "the stream has too few activity events for the test"
    ends = await produce(settings, settings.topic_events, restamped)
    await ingest_until_committed(settings, ends)
    assert await stored_day_aggregates(settings, orgs) == before
