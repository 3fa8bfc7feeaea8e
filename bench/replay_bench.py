"""``python -m bench replay``: ``services.ingest.replay.Replay`` over the 12 months of an
ingested workspace — events/s — and proof that exports are unchanged afterwards (the
sha256 of a users export, asked for before and after, over a window ending yesterday
so that its file cannot legitimately change)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import machine
from bench.dataset import Dataset, WorkspaceSpec, build_dataset
from bench.exports import RunningExporter, windows
from bench.stack import embedded_stack
from services.ingest.replay import Progress, Replay
from shared.domain.window import months_before


@dataclass(frozen=True)
class ReplayConfig:
    users: int = 1_000
    messages: int = 300_000
    seed: int = 31
    work_dir: Path = Path(".")

    def workspace(self) -> WorkspaceSpec:
        return WorkspaceSpec("rp", self.users, self.messages, self.seed)


@dataclass
class PhaseClock:
    """First and last progress report of each replay phase (``read``, ``rebuild``)."""

    began: dict[str, float] = field(default_factory=dict)
    ended: dict[str, float] = field(default_factory=dict)

    def update(self, phase: str, done: int, total: int) -> None:
        now = time.perf_counter()
        self.began.setdefault(phase, now)
        self.ended[phase] = now

    def seconds(self) -> dict[str, float]:
        return {phase: self.ended[phase] - start for phase, start in self.began.items()}


async def replay_and_compare(
    dataset: Dataset, org_id: str, today: date, work_dir: Path, say: Callable[[str], None]
) -> dict[str, Any]:
    window = windows(today)["12 months to yesterday"]
    log_path = work_dir / f"replay-exporter-{dataset.settings.exporter_group}.log"
    async with RunningExporter(dataset.settings, log_path) as exporter:
        before = await exporter.export(org_id, "users", window)
        clock = PhaseClock()
        replay = Replay(
            dataset.settings,
            first_day=months_before(today, 12) - timedelta(days=1),
            last_day=today,
            orgs=[org_id],
            work_dir=work_dir,
            progress=Progress(update=clock.update),
        )
        say(f"replaying {replay.first_day} .. {replay.last_day} of {org_id} ...")
        began = time.perf_counter()
        summary = await replay.run()
        seconds = time.perf_counter() - began
        replay.discard_work()
        after = await exporter.export(org_id, "users", window)
    digests = [
        timed.completion.data.sha256 if timed.completion.data is not None else None
        for timed in (before, after)
    ]
    return {
        "org_id": org_id,
        "from": replay.first_day.isoformat(),
        "to": replay.last_day.isoformat(),
        "records_read": summary.records_read,
        "facts_in_range": summary.facts_in_range,
        "days_rewritten": summary.days_rewritten,
        "facts_before": summary.facts_before,
        "facts_after": summary.facts_after,
        "conflicts": summary.conflicts,
        "seconds": seconds,
        "phase_seconds": clock.seconds(),
        "events_per_s": summary.records_read / seconds if seconds > 0 else None,
        "export_window": [window.first.isoformat(), window.last.isoformat()],
        "export_sha256_before": digests[0],
        "export_sha256_after": digests[1],
        "export_unchanged": digests[0] is not None and digests[0] == digests[1],
    }


async def run(config: ReplayConfig, say: Callable[[str], None]) -> dict[str, Any]:
    now = datetime.now(UTC)
    load_before = machine.load_average()
    spec = config.workspace()
    async with embedded_stack() as stack:
        dataset = await build_dataset(
            stack.settings, [spec], now=now, work_dir=config.work_dir, say=say
        )
        measured = await replay_and_compare(dataset, spec.org_id, now.date(), config.work_dir, say)
    return {
        "config": {
            "users": config.users,
            "messages_asked": config.messages,
            "end": now.isoformat(),
        },
        "load_average_before": load_before,
        "dataset": dataset.as_dict(),
        "measures": "records read from usage.events / seconds of Replay.run() (read + rebuild)",
        **measured,
    }
