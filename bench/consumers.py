"""One timed run of one consumer of the workload topic: the ingest service or a peer.

Every run starts a fresh process with a fresh consumer group (and, for the service,
fresh buckets) on the already-filled topic, and ends when the group's committed offsets
reach the topic's end — for the service that also means every event is durable in the
object store (it commits only then). Peers must also report that their last stage has
seen every record (``done_at`` in their marks file).

Two durations per run, both ending at that moment:
* ``wall_s`` from the spawn of the process (interpreter start, imports, group join);
* ``consume_s`` from the first fetch: for the service, its own "assigned" log line
  (written when the group join completes, right before the first fetch); for peers,
  when they took their first record.
Throughput is records / ``consume_s``.

The service is ingest alone: the compactor (month merges, roll-ups) is a service of its
own, which the export benchmark runs after ingest (:mod:`bench.compactor`).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bench.kafka_io import CommitWatcher, Ends
from bench.peers.common import read_marks
from bench.procs import Measured
from bench.stack import child_env
from shared.settings import Settings

SERVICE = "usage-export ingest"
BARE = "bare aiokafka fold"
FAUST = "faust-streaming"
QUIX = "Quix Streams"

_PEER_MODULES = {
    BARE: [sys.executable, "-m", "bench.peers.bare_fold"],
    FAUST: [
        *(sys.executable, "-m", "faust", "-A", "bench.peers.faust_app"),
        *("worker", "-l", "warn", "--without-web"),
    ],
    QUIX: [sys.executable, "-m", "bench.peers.quix_app"],
}
_WORKER_LOGGER = "services.ingest.worker"
EXPORTER_LOGGER = "services.exporter.worker"
_DONE_GRACE_S = 30.0


@dataclass
class ConsumerRun:
    consumer: str
    records: int
    wall_s: float | None = None
    consume_s: float | None = None
    peak_rss_mb: float | None = None
    error: str | None = None

    @property
    def events_per_s(self) -> float | None:
        if self.consume_s is None or self.consume_s <= 0:
            return None
        return self.records / self.consume_s

    def as_dict(self) -> dict[str, object]:
        return {
            "consumer": self.consumer,
            "records": self.records,
            "wall_s": self.wall_s,
            "consume_s": self.consume_s,
            "events_per_s": self.events_per_s,
            "peak_rss_mb": self.peak_rss_mb,
            "error": self.error,
        }


def assigned_at(log_text: str, logger: str = _WORKER_LOGGER) -> float | None:
    """Wall-clock time of the service's first "assigned" log line (by ``logger``: the
    ingest worker's unless told).

    Reads JSON log lines (``ts`` in UTC) and, for older builds, text lines that start
    with a local-time ``asctime``.
    """
    for line in log_text.splitlines():
        if line.startswith("{"):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if entry.get("logger") == logger and str(entry.get("msg", "")).startswith("assigned "):
                return datetime.fromisoformat(str(entry["ts"]).replace("Z", "+00:00")).timestamp()
        elif f" {logger} assigned " in line:
            return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return None


def service_argv() -> list[str]:
    return [sys.executable, "-m", "services", "ingest", "--log-level", "INFO"]


async def run_service(
    settings: Settings,
    ends: Ends,
    records: int,
    log_path: Path,
    *,
    timeout_s: float,
) -> ConsumerRun:
    """The real ingest service (``python -m services ingest``) with ``settings``, stopped
    once its group has committed ``ends``."""
    run = ConsumerRun(SERVICE, records)
    process = Measured(service_argv(), env=child_env(settings), log_path=log_path)
    async with CommitWatcher(settings, settings.ingest_group, settings.topic_events) as watcher:
        try:
            await process.start()
            finished = await watcher.wait_for(
                ends, timeout_s=timeout_s, alive=lambda: not process.exited
            )
            run.wall_s = finished - process.started_at
            first = assigned_at(process.log_text())
            run.consume_s = None if first is None else finished - first
        except (TimeoutError, RuntimeError) as exc:
            run.error = f"{exc}; log tail:\n{process.log_tail()}"
        finally:
            run.peak_rss_mb = process.sample_peak_rss()
            await process.stop()
    return run


async def run_peer(
    consumer: str,
    settings: Settings,
    ends: Ends,
    records: int,
    *,
    expected: int,
    work_dir: Path,
    timeout_s: float,
) -> ConsumerRun:
    """A peer process on ``settings.topic_events`` with a group of its own."""
    run = ConsumerRun(consumer, records)
    tag = f"{consumer.split()[0].lower()}-{int(time.time() * 1000)}"
    group = f"peer-{tag}"
    marks_path = work_dir / f"{tag}.marks"
    state_dir = work_dir / f"{tag}.state"
    state_dir.mkdir(parents=True, exist_ok=True)
    env = child_env(
        settings,
        {
            "BENCH_BOOTSTRAP": settings.kafka_bootstrap,
            "BENCH_TOPIC": settings.topic_events,
            "BENCH_GROUP": group,
            "BENCH_MARKS": str(marks_path),
            "BENCH_STATE_DIR": str(state_dir),
            "BENCH_EXPECTED": str(expected),
            "BENCH_PARTITIONS": str(settings.events_partitions),
            "BENCH_SESSION_TIMEOUT_MS": str(settings.kafka_session_timeout_ms),
        },
    )
    process = Measured(
        _PEER_MODULES[consumer], env=env, log_path=work_dir / f"{tag}.log", cwd=_repo_root()
    )
    async with CommitWatcher(settings, group, settings.topic_events) as watcher:
        try:
            await process.start()
            committed = await watcher.wait_for(
                ends, timeout_s=timeout_s, alive=lambda: not process.exited
            )
            done = await _wait_done(marks_path, process, _DONE_GRACE_S)
            finished = max(committed, done)
            marks = read_marks(marks_path)
            run.wall_s = finished - process.started_at
            run.consume_s = finished - float(marks["first_record_at"])
        except (TimeoutError, RuntimeError, KeyError) as exc:
            run.error = f"{type(exc).__name__}: {exc}; log tail:\n{process.log_tail()}"
        finally:
            run.peak_rss_mb = process.sample_peak_rss()
            await process.stop()
    return run


async def _wait_done(marks_path: Path, process: Measured, grace_s: float) -> float:
    deadline = time.monotonic() + grace_s
    while True:
        done = read_marks(marks_path).get("done_at")
        if done is not None:
            return float(done)
        if process.exited or time.monotonic() > deadline:
            raise RuntimeError("committed to the end, but the last stage did not see every record")
        await asyncio.sleep(0.2)


def _repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
