"""Scenario 9: export requests from 20 workspaces at once (every type, several subgroups)
while ingest runs at full speed on a stream of other workspaces' events. Every request
completes with the oracle's answer, none times out, and ingest commits the whole stream.

Throughput is measured (committed events per second before, during and after the burst)
and reported, not asserted: the machine is shared, so timings are figures, not verdicts.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.export_client import ExportClient, export_request
from shared.contracts.completions import ExportCompletion
from shared.settings import Settings
from tests.integration.conftest import FreshSettingsFactory
from tests.integration.kafka_tools import committed
from tests.integration.reliability.conftest import FiguresRecorder
from tests.integration.reliability.exports import (
    EXPORT_TYPES,
    ExportTally,
    compare,
    dataset_window,
    expected_of,
)
from tests.integration.reliability.processes import ServiceFleet
from tests.integration.reliability.streams import Progress, produce_paced, simulated
from tests.integration.reliability.waiting import wait_committed_while_alive

WORKSPACES = 20


@dataclass(frozen=True)
class Size:
    events: int  # of the 20 workspaces that are exported
    background: int  # of the stream ingested meanwhile
    bursts: int


SHORT = Size(events=6_000, background=25_000, bursts=1)
FULL = Size(events=200_000, background=400_000, bursts=3)


async def committed_total(settings: Settings) -> int:
    offsets = await committed(
        settings, settings.ingest_group, settings.topic_events, range(settings.events_partitions)
    )
    return sum(offsets.values())


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(SHORT, id="short"),
        pytest.param(FULL, id="full", marks=[pytest.mark.soak, pytest.mark.timeout(3600)]),
    ],
)
async def test_twenty_workspaces_export_while_ingest_runs_flat_out(
    make_fresh_settings: FreshSettingsFactory,
    tmp_path: Path,
    figures: FiguresRecorder,
    size: Size,
) -> None:
    row = figures.row("9", "short" if size is SHORT else "full")
    settings = await make_fresh_settings()
    dataset = simulated(91, size.events, orgs=WORKSPACES, days=60, users=15)
    background = simulated(92, size.background, orgs=8, days=60, org_prefix="bg")
    assert len(dataset.orgs) == WORKSPACES
    log = dataset.reference_log()
    window = dataset_window(dataset)
    zones = ("UTC", "Asia/Kolkata", "UTC", "America/St_Johns", "UTC")
    windows = {zone: dataset_window(dataset, zone) for zone in zones}
    tally = ExportTally()
    latencies: list[float] = []
    async with ServiceFleet(tmp_path) as fleet, ExportClient(settings) as client:
        ingest = fleet.start("ingest", settings)
        exporter = fleet.start("exporter", settings)
        ends = await produce_paced(settings, settings.topic_events, dataset.kafka_records)
        await wait_committed_while_alive(settings, ends, ingest, timeout_s=900)
        baseline = await committed_total(settings)

        progress = Progress(total=len(background.records))
        started = time.monotonic()
        producing = asyncio.create_task(
            produce_paced(
                settings, settings.topic_events, background.kafka_records, progress=progress
            )
        )
        try:
            for burst in range(size.bursts):
                # Let the stream build a backlog, then ask everything at once.
                await progress.reached((burst + 0.5) / (size.bursts + 0.5))
                before = await committed_total(settings)
                messages = [
                    export_request(org, kind, windows[zone].from_date, windows[zone].to_date,
                                   timezone=zone, to_timezone=zone)
                    for org in dataset.orgs
                    for kind, zone in zip(EXPORT_TYPES, zones, strict=True)
                ] + [
                    export_request(org, "users", window.from_date, window.to_date, group_by="model")
                    for org in dataset.orgs
                ]  # fmt: skip
                asked = time.monotonic()

                async def timed(message: dict[str, Any], asked: float = asked) -> ExportCompletion:
                    completion = await client.request(
                        message, within_s=settings.export_deadline_s + 120
                    )
                    latencies.append(time.monotonic() - asked)
                    return completion

                completions = await asyncio.gather(*(timed(m) for m in messages))
                burst_s = time.monotonic() - asked
                after = await committed_total(settings)
                row.details[f"burst{burst + 1}"] = {
                    "requests": len(messages),
                    "seconds": round(burst_s, 1),
                    "ingested_during_events_per_s": round((after - before) / burst_s),
                }
                for message, completion in zip(messages, completions, strict=True):
                    await compare(
                        tally, message, completion, expected_of(log, message, dataset.generated_at)
                    )
            all_ends = await producing
        finally:
            producing.cancel()
            await asyncio.gather(producing, return_exceptions=True)
        merged = {p: max(ends.get(p, 0), all_ends.get(p, 0)) for p in ends | all_ends}
        await wait_committed_while_alive(settings, merged, ingest, exporter, timeout_s=1800)
        elapsed = time.monotonic() - started
        total = await committed_total(settings)
        assert await exporter.terminate() == 0, exporter.log_tail()
        assert await ingest.terminate() == 0, ingest.log_tail()
    row.events = len(dataset.records) + len(background.records)
    row.exports, row.lost, row.doubled = tally.exports, tally.lost, tally.doubled
    row.faults, row.fault_kinds = tally.exports, "concurrent export requests"
    latencies.sort()
    row.details |= {
        "workspaces": WORKSPACES,
        "background_events_per_s": round((total - baseline) / elapsed),
        "latency_p50_s": round(latencies[len(latencies) // 2], 1),
        "latency_max_s": round(latencies[-1], 1),
        "statuses": dict(tally.statuses),
    }
    tally.assert_exact()
    assert set(tally.statuses) <= {200, 404}  # every one answered; none 500/503 (timed out)
    assert tally.statuses[200] >= WORKSPACES * 5
