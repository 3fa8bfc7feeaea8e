"""Scenario 3: an archive of weeks of events that were already ingested is produced again —
new offsets, same event ids, shuffled, some under another record key (so on another
partition) — and nothing changes: not a stored aggregate, not a byte of any export."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from services.ingest.app import run_ingest
from services.ingest.worker import IngestStats
from shared.settings import Settings
from tests.integration.conftest import FreshSettingsFactory
from tests.integration.kafka_tools import wait_until_committed
from tests.integration.reliability.conftest import FiguresRecorder
from tests.integration.reliability.exports import (
    ExportTally,
    dataset_window,
    exporter_in_process,
    requests_for,
    verify_exports,
)
from tests.integration.reliability.streams import KafkaRecord, produce_paced, simulated
from tests.integration.stored import stored_day_aggregates


@dataclass(frozen=True)
class Size:
    events: int
    weeks: int
    orgs: int


SHORT = Size(events=6_000, weeks=6, orgs=3)
FULL = Size(events=250_000, weeks=12, orgs=5)


async def ingest_all(settings: Settings, records: Sequence[KafkaRecord]) -> IngestStats:
    """Produce ``records``, run ingest in this process until it committed them; its stats."""
    ends = await produce_paced(settings, settings.topic_events, records)
    stop = asyncio.Event()
    task = asyncio.create_task(run_ingest(settings, stop=stop))
    try:
        await wait_until_committed(
            settings, settings.ingest_group, settings.topic_events, ends, timeout=1800
        )
    finally:
        stop.set()
        worker = await asyncio.wait_for(task, 300)
    return worker.stats


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(SHORT, id="short"),
        pytest.param(FULL, id="250k", marks=[pytest.mark.soak, pytest.mark.timeout(3600)]),
    ],
)
async def test_reproduced_archive_changes_nothing(
    make_fresh_settings: FreshSettingsFactory, figures: FiguresRecorder, size: Size
) -> None:
    row = figures.row("3", "short" if size is SHORT else f"{size.events // 1000}k")
    settings = await make_fresh_settings()
    dataset = simulated(31, size.events, orgs=size.orgs, days=7.0 * size.weeks)
    first = await ingest_all(settings, dataset.kafka_records)
    assert first.applied > 0
    orgs = dataset.orgs
    before = await stored_day_aggregates(settings, orgs)
    log = dataset.reference_log()
    window = dataset_window(dataset)
    async with exporter_in_process(settings) as client:
        earlier = await verify_exports(client, log, requests_for(orgs, window))
    earlier.assert_exact()

    # The archive: every event that was ingested (not the invalid ones), in another order,
    # a quarter of it under another workspace's key.
    rng = random.Random(size.events)
    archive = [(r.key, r.value) for r in dataset.records if r.kind != "invalid"]
    rng.shuffle(archive)
    keys = [org.encode() for org in orgs]
    archive = [
        (rng.choice(keys) if index % 4 == 0 else key, value)
        for index, (key, value) in enumerate(archive)
    ]
    again = await ingest_all(settings, archive)
    row.events = len(dataset.records) + len(archive)
    row.faults, row.fault_kinds = len(archive), "events re-produced"
    row.details |= {
        "weeks": size.weeks,
        "applied_first": first.applied,
        "applied_again": again.applied,
        "recognised_as_duplicates": again.duplicates,
    }
    assert again.applied == 0
    assert again.duplicates == len(archive)
    assert await stored_day_aggregates(settings, orgs) == before

    async with exporter_in_process(settings) as client:
        later = await verify_exports(client, log, requests_for(orgs, window))
    tally = ExportTally()
    for part in (earlier, later):
        tally.add(part)
    row.exports, row.lost, row.doubled = tally.exports, tally.lost, tally.doubled
    tally.assert_exact()
    assert later.files == earlier.files  # every export, byte for byte
    assert len(later.files) == len(orgs) * 5
