"""Scenario 2: three ingest workers in one consumer group while events stream in; one is
SIGKILLed, one is added, and one is frozen (SIGSTOP) past its session timeout and then
thawed — a zombie that still believes it owns partitions that were given to others, and
flushes and commits for them. Every rebalance is survived; the exports equal the oracle's.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import FreshSettingsFactory
from tests.integration.reliability.conftest import FiguresRecorder
from tests.integration.reliability.exports import (
    EXPORT_TYPES,
    dataset_window,
    exporter_in_process,
    requests_for,
    verify_exports,
)
from tests.integration.reliability.processes import ServiceFleet, ServiceProcess, metric
from tests.integration.reliability.streams import (
    Progress,
    end_offsets,
    produce_paced,
    simulated,
)
from tests.integration.reliability.waiting import wait_committed_while_alive
from tests.integration.test_ingest import assert_aggregates_match

#: What a worker logs when a table refused its commit (``FencedOut``: another writer
#: committed since its snapshot, or its position would not advance) before it reloads the
#: tables and drops what they hold (``services.ingest.workspace_writer``).
FENCED_OUT = "and committing the rest"


@dataclass(frozen=True)
class Size:
    events: int
    orgs: int
    duration_s: float  # production is spread over this long: longer than the faults take
    days: float
    session_timeout_ms: int = 6_000
    export_types: tuple[str, ...] = EXPORT_TYPES


SHORT = Size(
    events=15_000,
    orgs=12,
    duration_s=60.0,
    days=30.0,
    session_timeout_ms=3_000,
    export_types=("users", "api_keys"),
)
FULL = Size(events=300_000, orgs=24, duration_s=240.0, days=120.0)
PARTITIONS = 6
# The zombie flushes rarely, so that when it is frozen it surely holds applied events it
# has not made durable (a rebalance still flushes at once).
ZOMBIE_FLUSH_INTERVAL_S = 30.0
APPLIED = "usage_ingest_events_applied_total"
_PARTITION = re.compile(r"\('[^']+', (\d+)\)")


def owned(process: ServiceProcess) -> set[int] | None:
    """The partitions a worker's log says it owns now (None while it is rebalancing)."""
    lines = [
        line
        for line in process.log_path.read_text(errors="replace").splitlines()
        if '"msg":"assigned' in line or '"msg":"revoking' in line
    ]
    if not lines or '"msg":"revoking' in lines[-1]:
        return None
    return {int(number) for number in _PARTITION.findall(lines[-1])}


async def until_applied_more(worker: ServiceProcess, timeout_s: float = 120.0) -> None:
    """Until the worker applied events it had not when called (read from its metrics)."""
    before = await metric(worker, APPLIED)
    deadline = time.monotonic() + timeout_s
    while await metric(worker, APPLIED) <= before:
        worker.check_alive()
        assert time.monotonic() < deadline, "the worker applied nothing new"
        await asyncio.sleep(0.1)


async def stable(*workers: ServiceProcess, timeout_s: float = 120.0) -> dict[int, set[int]]:
    """Wait until exactly ``workers`` share every partition, each owned once."""
    deadline = time.monotonic() + timeout_s
    while True:
        for worker in workers:
            worker.check_alive()
        assignments = [owned(worker) for worker in workers]
        if all(a for a in assignments):
            shares = [a for a in assignments if a is not None]
            if sum(len(a) for a in shares) == PARTITIONS and set().union(*shares) == set(
                range(PARTITIONS)
            ):
                return {
                    worker.pid or 0: share for worker, share in zip(workers, shares, strict=True)
                }
        if time.monotonic() > deadline:
            raise AssertionError(f"the group did not settle: {assignments}")
        await asyncio.sleep(0.2)


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(SHORT, id="short"),
        pytest.param(FULL, id="300k", marks=[pytest.mark.soak, pytest.mark.timeout(3600)]),
    ],
)
async def test_group_survives_kill_join_and_zombie(
    make_fresh_settings: FreshSettingsFactory,
    tmp_path: Path,
    figures: FiguresRecorder,
    size: Size,
) -> None:
    row = figures.row("2", "short" if size is SHORT else f"{size.events // 1000}k")
    settings = await make_fresh_settings(
        events_partitions=PARTITIONS,
        ingest_flush_interval_s=0.5,
        ingest_backlog_flush_interval_s=2.0,
        kafka_session_timeout_ms=size.session_timeout_ms,
        kafka_heartbeat_interval_ms=min(1_000, size.session_timeout_ms // 6),
    )
    dataset = simulated(77, size.events, orgs=size.orgs, days=size.days, invalid_rate=0.005)
    records = dataset.kafka_records
    row.events = len(records)
    progress = Progress(total=len(records))
    hurry = asyncio.Event()  # the faults are done: produce the rest at full speed
    async with ServiceFleet(tmp_path) as fleet:
        first, doomed = (fleet.start("ingest", settings, log_level="INFO") for _ in range(2))
        rare_flushes = {
            "ingest_flush_interval_s": ZOMBIE_FLUSH_INTERVAL_S,
            "ingest_backlog_flush_interval_s": ZOMBIE_FLUSH_INTERVAL_S,
        }
        zombie = fleet.start("ingest", settings.model_copy(update=rare_flushes), log_level="INFO")
        await stable(first, doomed, zombie)
        producing = asyncio.create_task(
            produce_paced(
                settings,
                settings.topic_events,
                records,
                duration_s=size.duration_s,
                progress=progress,
                chunk=250,
                hurry=hurry,
            )
        )
        try:
            await progress.reached(0.1)
            assert doomed.kill() == -9, doomed.log_tail()
            row.details["killed_at_fraction"] = round(progress.fraction, 3)
            await stable(first, zombie)

            added = fleet.start("ingest", settings, log_level="INFO")
            row.details["added_at_fraction"] = round(progress.fraction, 3)
            before_freeze = await stable(first, zombie, added)

            # Frozen once it has applied events since the rebalance's flush: it holds
            # state it has not made durable, for offsets it has not committed.
            await until_applied_more(zombie)
            zombie.signal(signal.SIGSTOP)
            frozen_with = before_freeze[zombie.pid or 0]
            at_freeze = await end_offsets(settings, settings.topic_events)
            row.details["frozen_at_fraction"] = round(progress.fraction, 3)
            taken_over = await stable(first, added)  # its partitions go to the others
            # Thawed only once the new owners have made durable and committed everything
            # the zombie can have applied: each state it holds is then stale, and its
            # flush must lose the conditional write to theirs.
            await wait_committed_while_alive(
                settings, {p: at_freeze[p] for p in frozen_with}, first, added, timeout_s=300
            )
            zombie.signal(signal.SIGCONT)
            row.details["thawed_at_fraction"] = round(progress.fraction, 3)
            await stable(first, zombie, added)
            assert not progress.done.is_set(), "production ended before the faults did"
            hurry.set()
            ends = await producing
        finally:
            producing.cancel()
            await asyncio.gather(producing, return_exceptions=True)
        row.faults, row.fault_kinds = 3, "SIGKILL, join, SIGSTOP zombie"
        survivors = [first, zombie, added]
        await wait_committed_while_alive(settings, ends, *survivors, timeout_s=1800)
        row.details["caught_up_s"] = round(time.monotonic() - row.started, 1)
        for worker in survivors:
            assert await worker.terminate() == 0, worker.log_tail()
        # While the zombie was frozen, the partitions it still believed it owned were
        # owned by the others too: "a partition briefly owned twice".
        twice = frozen_with & set().union(*taken_over.values())
        assert twice == frozen_with
        logs = fleet.processes
        row.details |= {
            "partitions_owned_twice": sorted(twice),
            "assignments": sum(p.log_count('"msg":"assigned') for p in logs),
            "table_commits_refused": sum(p.log_count(FENCED_OUT) for p in logs),
            "commits_refused": sum(p.log_count("offset commit failed") for p in logs),
            "zombie_table_commits_refused": zombie.log_count(FENCED_OUT),
            "zombie_commits_refused": zombie.log_count("offset commit failed"),
        }
        # The zombie did try to commit for partitions it no longer owned, and was fenced.
        assert row.details["zombie_table_commits_refused"] > 0, zombie.log_tail()

    # The stored facts and dimension versions equal a recomputation from the raw events;
    # no event_id is stored twice (a zombie's commit that got through would double them).
    await assert_aggregates_match(settings, dataset.records)
    async with exporter_in_process(settings) as client:
        tally = await verify_exports(
            client,
            dataset.reference_log(),
            requests_for(dataset.orgs, dataset_window(dataset), size.export_types),
        )
    row.exports, row.lost, row.doubled = tally.exports, tally.lost, tally.doubled
    row.details["rows_compared"] = tally.rows
    tally.assert_exact()
    assert tally.rows > 0
