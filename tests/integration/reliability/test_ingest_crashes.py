"""Scenario 1: ingest SIGKILLed at random moments while a stream with duplicates, late and
out-of-order events comes in, restarted each time; the exports equal the oracle's."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import FreshSettingsFactory
from tests.integration.kafka_tools import read_topic
from tests.integration.reliability.conftest import FiguresRecorder
from tests.integration.reliability.exports import (
    dataset_window,
    exporter_in_process,
    requests_for,
    verify_exports,
)
from tests.integration.reliability.processes import ServiceFleet
from tests.integration.reliability.streams import Progress, produce_paced, simulated
from tests.integration.reliability.waiting import wait_committed_while_alive
from tests.integration.test_ingest import assert_aggregates_match


@dataclass(frozen=True)
class Size:
    events: int
    kills: int
    orgs: int
    interval_s: tuple[float, float]  # a kill comes this long (uniform) after the restart
    days: float = 364.0  # the span of the stream (fewer days: fewer day heads per flush)
    # Settings of the ingest under test: the short version flushes and commits often, so
    # that three kills land around commits; the full one runs with the service defaults.
    overrides: tuple[tuple[str, object], ...] = ()


SHORT = Size(
    events=20_000,
    kills=3,
    orgs=3,
    interval_s=(1.0, 4.0),
    days=45.0,
    overrides=(
        ("ingest_flush_interval_s", 0.5),
        ("ingest_backlog_flush_interval_s", 2.0),
        ("kafka_session_timeout_ms", 3_000),
        ("kafka_heartbeat_interval_ms", 500),
    ),
)
FULL = Size(events=500_000, kills=12, orgs=5, interval_s=(3.0, 15.0))


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(SHORT, id="short"),
        pytest.param(FULL, id="500k", marks=[pytest.mark.soak, pytest.mark.timeout(5400)]),
    ],
)
async def test_sigkilled_ingest_loses_and_doubles_nothing(
    make_fresh_settings: FreshSettingsFactory,
    tmp_path: Path,
    figures: FiguresRecorder,
    size: Size,
) -> None:
    row = figures.row("1", "short" if size is SHORT else f"{size.events // 1000}k")
    seed = random.SystemRandom().randrange(2**32)
    row.details["seed"] = seed
    rng = random.Random(seed)
    settings = await make_fresh_settings(**dict(size.overrides))
    dataset = simulated(
        seed % 10_000, size.events, orgs=size.orgs, days=size.days, invalid_rate=0.01
    )
    records = dataset.kafka_records
    row.events = len(records)
    row.details |= {
        "duplicates": dataset.count("duplicate"),
        "invalid": dataset.count("invalid"),
    }
    # Spread production over the kills, so that they land while events stream in.
    mean_interval = sum(size.interval_s) / 2
    progress = Progress(total=len(records))
    kill_points: list[float] = []
    async with ServiceFleet(tmp_path) as fleet:
        ingest = fleet.start("ingest", settings)
        producing = asyncio.create_task(
            produce_paced(
                settings,
                settings.topic_events,
                records,
                duration_s=size.kills * mean_interval,
                progress=progress,
            )
        )
        try:
            for _ in range(size.kills):
                await asyncio.sleep(rng.uniform(*size.interval_s))
                ingest.check_alive()
                assert ingest.kill() == -9
                kill_points.append(round(progress.fraction, 3))
                row.faults += 1
                await asyncio.sleep(rng.uniform(0.0, 1.0))
                ingest = fleet.start("ingest", settings)
            ends = await producing
        finally:
            producing.cancel()
            await asyncio.gather(producing, return_exceptions=True)
        row.fault_kinds = "SIGKILL"
        row.details["kills_at_fraction_produced"] = kill_points
        row.details["produced_s"] = round(time.monotonic() - row.started, 1)
        await wait_committed_while_alive(settings, ends, ingest, timeout_s=1800)
        row.details["caught_up_s"] = round(time.monotonic() - row.started, 1)
        assert await ingest.terminate() == 0, ingest.log_tail()
        row.details["ingest_peak_rss_mib"] = max(p.peak_rss_kib for p in fleet.processes) // 1024

    if size is not SHORT:  # an aggregate-level cross-check, beside the exports'
        await assert_aggregates_match(settings, dataset.records)
    row.details["aggregates_checked_s"] = round(time.monotonic() - row.started, 1)
    log = dataset.reference_log()
    async with exporter_in_process(settings) as client:
        tally = await verify_exports(
            client, log, requests_for(dataset.orgs, dataset_window(dataset))
        )
    row.exports, row.lost, row.doubled = tally.exports, tally.lost, tally.doubled
    row.details["rows_compared"] = tally.rows
    row.details["exports_checked_s"] = round(time.monotonic() - row.started, 1)
    tally.assert_exact()
    assert tally.exports == len(dataset.orgs) * 5
    assert tally.rows > 0

    invalid = {record.value[:1000] for record in dataset.records if record.kind == "invalid"}
    letters = await read_topic(settings, settings.topic_events_dlq, expected=len(invalid))
    dead = [letter.value[:1000] for letter in letters]
    assert set(dead) == invalid  # each bad event dead-lettered (again, if redelivered)
    row.details["dead_letters"] = len(dead)
