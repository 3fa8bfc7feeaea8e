"""The compactor as a service of its own, on the real broker and store: ingest (run here,
and no longer tidying anything itself) commits the day files of closed months; a
compactor *process* (``tests.integration.compactor_process``, its clock the test's) merges
each month into one file and rolls it up, without changing what is stored. It finds the
work from the store alone: the first month at its start, the second, committed while it
runs, by listing the facts table's log after the last commit it saw. Its /health answers
ready, its /metrics count what it did, and SIGTERM stops it with exit 0."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from deltalake import DeltaTable

from services.compactor.janitor import files_per_span
from shared.columnar.rollups import (
    ROLLUP_KINDS,
    facts_files,
    open_rollups,
    pending,
    rolled_up_sources,
)
from shared.columnar.tables import FACTS_TABLE, TableStore
from shared.embedded.ports import free_ports
from shared.settings import Settings, settings_env
from shared.simulation import SimConfig, simulate
from tests.integration.kafka_tools import produce
from tests.integration.test_ingest import ingest_until_committed
from tests.integration.test_scheduler import ClockFile

ORG = "ws-0001"
ROOT = Path(__file__).resolve().parents[2]


def month_back(today: date, months: int) -> date:
    """The first day of the UTC month ``months`` before ``today``'s."""
    index = today.year * 12 + today.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


def month_events(seed: int, first: date) -> list[tuple[bytes, bytes]]:
    """A few hundred events of one workspace, all inside the UTC month starting ``first``."""
    start = datetime.combine(first, datetime.min.time(), UTC) + timedelta(hours=1)
    end = datetime.combine(month_back(first, -1), datetime.min.time(), UTC) - timedelta(hours=1)
    config = SimConfig(
        seed=seed, orgs=1, events=400, start=start, end=end, dup_rate=0.0, late_rate=0.0
    )
    return [(record.key, record.value) for record in simulate(config)]


def start_compactor(settings: Settings, clock: ClockFile, log: Path) -> subprocess.Popen[bytes]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("USAGE_")}
    env |= settings_env(settings) | {"USAGE_LOG_FORMAT": "json"}
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.integration.compactor_process", str(clock.path)],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except urllib.error.URLError as error:
        return 0, str(error.reason)  # not listening yet


def sample(metrics: str, name: str) -> float:
    """The value of the sample ``name`` (with its labels, as exposed), 0 when absent."""
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


async def eventually(
    check: Callable[[], Awaitable[bool]], process: subprocess.Popen[bytes], log: Path, what: str
) -> None:
    deadline = time.monotonic() + 180
    while not await check():
        tail = log.read_text(errors="replace")[-3000:]
        assert process.poll() is None, f"the compactor exited ({process.returncode}):\n{tail}"
        assert time.monotonic() < deadline, f"{what} did not happen; the compactor's log:\n{tail}"
        await asyncio.sleep(0.5)


def table_state(settings: Settings) -> tuple[dict[str, int], int, bool]:
    """(files per span, rows, whether every month file has its roll-ups of each kind)."""
    tables = TableStore.of(settings)
    options = dict(tables.options)
    facts = DeltaTable(tables.uri(ORG, FACTS_TABLE), storage_options=options)
    rows = sum(batch.num_rows for batch in facts.to_pyarrow_dataset().to_batches(columns=[]))
    rolled = True
    for kind in ROLLUP_KINDS:
        rollups = open_rollups(kind, tables.uri(ORG, kind.table), options, create=False)
        rolled &= not pending(facts_files(facts), rolled_up_sources(kind, rollups))
    return dict(files_per_span(facts)), rows, rolled


def months(spans: dict[str, int]) -> set[str]:
    return {span for span in spans if len(span) == len("YYYY-MM")}


async def test_a_compactor_process_merges_and_rolls_up_what_ingest_committed(
    fresh_settings: Settings, now: datetime, tmp_path: Path
) -> None:
    (port,) = free_ports(1)
    settings = fresh_settings.model_copy(
        update={"compaction_interval_s": 1.0, "compactor_metrics_port": port}
    )
    url = f"http://127.0.0.1:{port}"
    older, newer = month_back(now.date(), 3), month_back(now.date(), 2)
    clock = ClockFile(tmp_path / "clock")
    clock.set(now)

    # Ingest alone: day files, nothing merged (it runs no janitor any more).
    ends = await produce(settings, settings.topic_events, month_events(11, older))
    await ingest_until_committed(settings, ends)
    spans, rows, _ = await asyncio.to_thread(table_state, settings)
    assert spans, "ingest committed day files"
    assert not months(spans), "ingest merged a month by itself"

    log = tmp_path / "compactor.log"
    compactor = start_compactor(settings, clock, log)
    try:

        async def merged(month: date, rows: int) -> bool:
            spans, now_rows, rolled = await asyncio.to_thread(table_state, settings)
            assert now_rows == rows, "a rewrite changed what is stored"
            return month.isoformat()[:7] in months(spans) and rolled

        # At its start: every workspace counts as changed (the first full pass).
        await eventually(lambda: merged(older, rows), compactor, log, "the first month's merge")
        status, body = get(f"{url}/health/ready")
        assert status == 200, body

        async def full_pass_counted() -> bool:
            # Counted once the pass is over: after the merge is visible in the store.
            metrics = get(f"{url}/metrics")[1]
            return sample(metrics, 'usage_compactor_passes_total{kind="full"}') == 1

        await eventually(full_pass_counted, compactor, log, "the full pass's end")

        # While it runs: ingest commits another closed month; nobody tells the compactor.
        ends = await produce(settings, settings.topic_events, month_events(12, newer))
        await ingest_until_committed(settings, ends)
        _, rows, _ = await asyncio.to_thread(table_state, settings)
        await eventually(lambda: merged(newer, rows), compactor, log, "the second month's merge")
        spans, _, _ = await asyncio.to_thread(table_state, settings)
        assert {older.isoformat()[:7], newer.isoformat()[:7]} <= months(spans)
        after = get(f"{url}/metrics")[1]
        assert sample(after, "usage_compactor_months_merged_total") >= 2
        assert sample(after, "usage_compactor_rollups_total") >= 2 * len(ROLLUP_KINDS)
        # Found by a round (the full pass is hourly: it ran once), from the log's listing.
        assert sample(after, 'usage_compactor_passes_total{kind="full"}') == 1
        assert sample(after, 'usage_compactor_passes_total{kind="round"}') >= 1
        assert sample(after, "usage_compactor_workspaces_changed_total") >= 1
    finally:
        compactor.send_signal(signal.SIGTERM)
        try:
            returncode = await asyncio.to_thread(compactor.wait, 60)
        except subprocess.TimeoutExpired:
            compactor.kill()
            raise
    assert returncode == 0, log.read_text(errors="replace")[-3000:]
