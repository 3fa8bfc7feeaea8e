"""Scenario 4: the object store is unavailable for a while, during ingest and during exports.

The store is reached through a fault proxy (``proxy.py``) that the test cuts and restores;
the session's store itself keeps running. Ingest must wait and resume with nothing lost
and nothing committed that is not durable; exports must either succeed after recovery
within their deadline or fail with a 503 completion that says so, and no file may appear
under a final key unless it is whole.

The short versions shrink the outage and, to go past the clients' retry budget as the full
30 s outage does with the default settings, shrink that budget too (``s3_max_attempts``).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from shared.adapters.export_client import ExportClient
from shared.adapters.s3 import S3ObjectStore
from tests.integration.conftest import FreshSettingsFactory
from tests.integration.kafka_tools import committed
from tests.integration.reliability.conftest import FiguresRecorder
from tests.integration.reliability.exports import (
    ExportTally,
    compare,
    csv_keys,
    dataset_window,
    expected_of,
    requests_for,
    verify_exports,
)
from tests.integration.reliability.processes import ServiceFleet
from tests.integration.reliability.proxy import FaultProxy
from tests.integration.reliability.streams import produce_paced, simulated
from tests.integration.reliability.waiting import wait_committed_while_alive
from tests.integration.test_ingest import assert_aggregates_match


@dataclass(frozen=True)
class Outage:
    seconds: float
    mode: Literal["reset", "blackhole"]
    s3_max_attempts: int  # the clients' retry budget (8 by default: about 16 s)
    events: int
    deadline_s: float  # the exporter's deadline in the phase that must succeed
    short_deadline_s: float  # ... and in the phase that must answer 503


SHORT = Outage(
    seconds=6.0, mode="reset", s3_max_attempts=3, events=4000, deadline_s=60, short_deadline_s=3
)
FULL = Outage(
    seconds=30.0, mode="reset", s3_max_attempts=8, events=100_000, deadline_s=120,
    short_deadline_s=10,
)  # fmt: skip
FULL_BLACKHOLE = Outage(
    seconds=30.0, mode="blackhole", s3_max_attempts=8, events=100_000, deadline_s=120,
    short_deadline_s=10,
)  # fmt: skip

OUTAGES = [
    pytest.param(SHORT, id="short"),
    pytest.param(FULL, id="30s-reset", marks=[pytest.mark.soak, pytest.mark.timeout(3600)]),
    pytest.param(
        FULL_BLACKHOLE, id="30s-blackhole", marks=[pytest.mark.soak, pytest.mark.timeout(3600)]
    ),
]


def size_name(outage: Outage) -> str:
    return "short" if outage is SHORT else f"{outage.seconds:.0f}s {outage.mode}"


@pytest.mark.parametrize("outage", OUTAGES)
async def test_ingest_waits_for_the_store_and_loses_nothing(
    make_fresh_settings: FreshSettingsFactory,
    store_proxy: FaultProxy,
    tmp_path: Path,
    figures: FiguresRecorder,
    outage: Outage,
) -> None:
    row = figures.row("4a", size_name(outage))
    settings = await make_fresh_settings(
        s3_endpoint=store_proxy.endpoint,
        s3_max_attempts=outage.s3_max_attempts,
        ingest_flush_interval_s=0.5,
    )
    before = simulated(41, outage.events // 2, days=30, orgs=2)
    # New workspaces during the outage: their tables are not open, so ingest must open
    # (create) them, and read their positions and ids, in the store that is down.
    during = simulated(42, outage.events // 2, days=30, orgs=2, org_prefix="nw")
    row.events = len(before.records) + len(during.records)
    async with ServiceFleet(tmp_path) as fleet:
        ingest = fleet.start("ingest", settings)
        ends = await produce_paced(settings, settings.topic_events, before.kafka_records)
        await wait_committed_while_alive(settings, ends, ingest, timeout_s=600)

        store_proxy.cut(outage.mode)
        row.faults, row.fault_kinds = 1, f"store {outage.mode} {outage.seconds:.0f} s"
        cut_at = time.monotonic()
        partitions = range(settings.events_partitions)
        at_cut = await committed(settings, settings.ingest_group, settings.topic_events, partitions)
        ends_during = await produce_paced(settings, settings.topic_events, during.kafka_records)
        while time.monotonic() - cut_at < outage.seconds:
            ingest.check_alive()
            await asyncio.sleep(0.5)
        at_restore = await committed(
            settings, settings.ingest_group, settings.topic_events, partitions
        )
        ingest.check_alive()  # waited through the whole outage
        store_proxy.restore()
        row.details["proxy"] = vars(store_proxy.stats).copy()
        # Nothing produced during the outage could be made durable, so nothing of it
        # may have been committed.
        assert at_restore == at_cut
        all_ends = {p: max(ends.get(p, 0), ends_during.get(p, 0)) for p in ends | ends_during}
        await wait_committed_while_alive(settings, all_ends, ingest, timeout_s=600)
        row.details["recovered_s"] = round(time.monotonic() - cut_at - outage.seconds, 1)
        assert await ingest.terminate() == 0, ingest.log_tail()

    log = before.reference_log(extra=[record.value for record in during.records])
    window = dataset_window(before)
    orgs = before.orgs + during.orgs
    direct = settings.model_copy(update={"s3_endpoint": store_proxy.target_endpoint})
    # The stored facts and dimension versions equal a recomputation from the raw events;
    # no event_id is stored twice.
    await assert_aggregates_match(direct, before.records + during.records)
    async with ServiceFleet(tmp_path) as fleet, ExportClient(direct) as client:
        fleet.start("exporter", direct)
        tally = await verify_exports(client, log, requests_for(orgs, window))
    row.exports, row.lost, row.doubled = tally.exports, tally.lost, tally.doubled
    tally.assert_exact()
    assert tally.statuses[200] >= len(orgs) * 4


@pytest.mark.parametrize("outage", OUTAGES)
async def test_exports_survive_the_store_or_answer_503(
    make_fresh_settings: FreshSettingsFactory,
    store_proxy: FaultProxy,
    tmp_path: Path,
    figures: FiguresRecorder,
    outage: Outage,
) -> None:
    row = figures.row("4b", size_name(outage))
    settings = await make_fresh_settings(
        s3_endpoint=store_proxy.endpoint,
        s3_max_attempts=outage.s3_max_attempts,
        export_deadline_s=outage.deadline_s,
    )
    dataset = simulated(43, outage.events, days=30, orgs=3)
    row.events = len(dataset.records)
    log = dataset.reference_log()
    window = dataset_window(dataset)
    tally = ExportTally()
    async with ServiceFleet(tmp_path) as fleet, ExportClient(settings) as client:
        ingest = fleet.start("ingest", settings)
        ends = await produce_paced(settings, settings.topic_events, dataset.kafka_records)
        await wait_committed_while_alive(settings, ends, ingest, timeout_s=600)
        assert await ingest.terminate() == 0

        # Phase 1: the outage is shorter than the deadline, every export must succeed.
        exporter = fleet.start("exporter", settings)
        messages = requests_for(dataset.orgs, window)
        store_proxy.cut(outage.mode)
        cut_at = time.monotonic()
        asked = asyncio.gather(
            *(client.request(m, within_s=outage.deadline_s + 60) for m in messages)
        )
        await asyncio.sleep(outage.seconds)
        exporter.check_alive()
        store_proxy.restore()
        answered = await asked
        row.details["phase1_answered_after_restore_s"] = round(
            time.monotonic() - cut_at - outage.seconds, 1
        )
        for message, completion in zip(messages, answered, strict=True):
            expected = expected_of(log, message, dataset.generated_at)
            await compare(tally, message, completion, expected, log=log)
        assert tally.statuses.keys() <= {200, 404}, tally.statuses
        assert await exporter.terminate() == 0, exporter.log_tail()

        # Phase 2: the outage outlasts the deadline: a clear 503, then the same request
        # ids succeed once the store is back, each with exactly one file.
        short = settings.model_copy(update={"export_deadline_s": outage.short_deadline_s})
        exporter = fleet.start("exporter", short)
        retried = requests_for(dataset.orgs, window, types=("users", "api_keys"))
        store_proxy.cut(outage.mode)
        phase2_cut_at = time.monotonic()
        failed = await asyncio.gather(
            *(client.request(m, within_s=outage.short_deadline_s + 90) for m in retried)
        )
        files_during = await csv_keys(
            settings.model_copy(update={"s3_endpoint": store_proxy.target_endpoint})
        )
        exporter.check_alive()
        statuses = {c.error.status if c.error else 200 for c in failed}
        row.details["phase2_statuses"] = sorted(statuses)
        assert statuses == {503}, [c.error for c in failed]
        for completion in failed:
            assert completion.error is not None
            assert completion.error.error == "Service Unavailable"
            assert "object store" in completion.error.message
            assert "retry later with the same request_id" in completion.error.message
        remaining = outage.seconds - (time.monotonic() - phase2_cut_at)
        await asyncio.sleep(max(0.0, remaining))
        store_proxy.restore()
        row.faults, row.fault_kinds = 2, f"store {outage.mode} {outage.seconds:.0f} s"
        row.details["phase2_outage_s"] = round(time.monotonic() - phase2_cut_at, 1)
        assert row.details["phase2_outage_s"] >= outage.seconds
        again = await asyncio.gather(*(client.request(m, within_s=120) for m in retried))
        for message, completion in zip(retried, again, strict=True):
            expected = expected_of(log, message, dataset.generated_at)
            await compare(tally, message, completion, expected, log=log)
        assert await exporter.terminate() == 0, exporter.log_tail()
    row.details["proxy"] = vars(store_proxy.stats).copy()
    row.exports, row.lost, row.doubled = tally.exports, tally.lost, tally.doubled
    tally.assert_exact()

    direct = settings.model_copy(update={"s3_endpoint": store_proxy.target_endpoint})
    # No file of a request that failed had appeared under its final key.
    failed_paths = {c.request_id[:8] for c in failed}
    assert not [key for key in files_during if key[-12:-4] in failed_paths]
    # Every file is whole: the one its successful completion describes, and only those.
    described = {c.data.filePath: c.data for c in [*answered, *again] if c.data is not None}
    assert sorted(described) == await csv_keys(direct)
    async with S3ObjectStore(direct, direct.exports_bucket) as store:
        for path, data in described.items():
            stored = await store.get(path)
            assert stored is not None
            assert (len(stored.body), hashlib.sha256(stored.body).hexdigest()) == (
                data.bytes,
                data.sha256,
            )
