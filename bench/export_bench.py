"""``python -m bench export``: end-to-end latency of exports and the exporter's memory.

One large workspace (``--users``, 1,000 agents, 300 projects, 100 API keys, 20 models,
12 months of simulated, skewed activity with ``--messages`` message events) plus
smaller/larger ones for the workspace-size series is ingested by the real ingest
service; the real exporter then answers, one request at a time, the 12-month users
export *cold* ``--export-runs`` times (the workspace's month rollups deleted before each
run, so every run rebuilds them from the day heads), then each of the five types over
12 months ``--export-runs`` times (warm: the rollups the cold runs left are fresh), the
users export over 1 day / 1 month / 12 months, and the users export of every workspace
size (whose first run is cold).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from bench import machine, targets
from bench.dataset import Dataset, WorkspaceSpec, build_dataset
from bench.exports import TYPES, RunningExporter, Window, windows
from bench.replay_bench import replay_and_compare
from bench.stack import embedded_stack
from bench.stats import Summary, percentile
from shared.adapters.s3 import ObjectStore
from shared.domain import keys
from shared.settings import Settings


@dataclass(frozen=True)
class ExportConfig:
    users: int = 10_000
    messages: int = 5_000_000
    runs: int = 5
    scale_users: tuple[int, ...] = (1_000, 100_000)
    scale_messages: int = 500_000
    seed: int = 21
    work_dir: Path = Path(".")

    def workspaces(self) -> list[WorkspaceSpec]:
        main = WorkspaceSpec("big", self.users, self.messages, self.seed)
        others = [
            WorkspaceSpec(f"u{users}", users, self.scale_messages, self.seed + index + 1)
            for index, users in enumerate(self.scale_users)
            if users != self.users
        ]
        return [main, *others]


async def measure(
    exporter: RunningExporter,
    name: str,
    org_id: str,
    data_type: str,
    window: Window,
    runs: int,
    *,
    users: int,
    before_each: Callable[[], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """``runs`` sequential requests (distinct request ids): latency p50/p95, rows, bytes;
    ``before_each`` runs (untimed) before every request."""
    seconds: list[float] = []
    item: dict[str, Any] = {
        "name": name,
        "type": data_type,
        "window": window.label,
        "from": window.first.isoformat(),
        "to": window.last.isoformat(),
        "org_id": org_id,
        "users": users,
    }
    for _ in range(runs):
        if before_each is not None:
            await before_each()
        timed = await exporter.export(org_id, data_type, window)
        data = timed.completion.data
        if not timed.completion.success or data is None:
            error = timed.completion.error
            item["error"] = f"{error.status} {error.message}" if error else "failed"
            return item
        seconds.append(timed.seconds)
        item.update(rows=data.recordCount, bytes=data.bytes, sha256=data.sha256)
    item["seconds"] = Summary.of(seconds).as_dict()
    item["p50_s"] = percentile(seconds, 50)
    item["p95_s"] = percentile(seconds, 95)
    return item


async def run_exports(
    dataset: Dataset,
    config: ExportConfig,
    today: date,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Every export of the benchmark against an ingested dataset."""
    spans = windows(today)
    main, *others = config.workspaces()
    found: list[dict[str, Any]] = []
    log_path = config.work_dir / f"exporter-{dataset.settings.exporter_group}.log"
    async with RunningExporter(dataset.settings, log_path) as exporter:
        # The first request also waits for the exporter to join its group: not timed.
        warm = await exporter.export(main.org_id, "projects", spans["1 day"])
        say(f"exporter ready (first request incl. start and group join: {warm.seconds:.1f} s)")

        async def without_rollups() -> None:
            await drop_rollups(dataset.settings, main.org_id)

        cold = await measure(
            exporter,
            "users 12 months, cold (rollups deleted before each run)",
            main.org_id,
            "users",
            spans["12 months"],
            config.runs,
            users=main.users,
            before_each=without_rollups,
        )
        found.append(cold)
        say(_line(cold))
        plan = [
            (f"{data_type} 12 months", main, data_type, spans["12 months"], config.runs)
            for data_type in TYPES
        ]
        plan += [
            (f"users {label}", main, "users", spans[label], config.runs)
            for label in ("1 month", "1 day")
        ]
        plan += [
            (f"users 12 months, {spec.users:,}-user workspace", spec, "users",
             spans["12 months"], config.runs)
            for spec in others
        ]  # fmt: skip
        for name, spec, data_type, window, runs in plan:
            item = await measure(
                exporter, name, spec.org_id, data_type, window, runs, users=spec.users
            )
            found.append(item)
            say(_line(item))
    return {
        "exports": found,
        "exporter_peak_rss_mb": exporter.process.peak_rss_mb,
        "first_request_s": warm.seconds,
    }


async def run(
    config: ExportConfig, say: Callable[[str], None], *, with_replay: bool = False
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The export section, and (``with_replay``) the replay section measured on the same
    dataset's main workspace afterwards."""
    now = datetime.now(UTC)
    load_before = machine.load_average()
    replayed: dict[str, Any] | None = None
    async with embedded_stack() as stack:
        dataset = await build_dataset(
            stack.settings, config.workspaces(), now=now, work_dir=config.work_dir, say=say
        )
        measured = await run_exports(dataset, config, now.date(), say)
        if with_replay:
            org_id = config.workspaces()[0].org_id
            replayed = await replay_and_compare(dataset, org_id, now.date(), config.work_dir, say)
            replayed = {
                "config": {"dataset": "the export benchmark's", "end": now.isoformat()},
                "dataset": dataset.as_dict(),
                **replayed,
            }
    section = {
        "config": {
            "users": config.users,
            "messages_asked": config.messages,
            "runs": config.runs,
            "scale_users": list(config.scale_users),
            "scale_messages": config.scale_messages,
            "workspaces": [spec.org_id for spec in config.workspaces()],
            "end": now.isoformat(),
        },
        "load_average_before": load_before,
        "dataset": dataset.as_dict(),
        "measures": (
            "seconds from producing the request to consuming its completion (the CSV is "
            "then complete in S3), one request at a time; p50/p95 nearest-rank over runs"
        ),
        **measured,
        "targets": verdicts(measured),
    }
    return section, replayed


async def drop_rollups(settings: Settings, org_id: str) -> int:
    """Delete the workspace's month rollups (the next 12-month export rebuilds them)."""
    async with ObjectStore(settings, settings.aggregates_bucket) as store:
        found = await store.list_objects(keys.months_prefix(org_id))
        for item in found:
            await store.delete(str(item["Key"]))
    return len(found)


def verdicts(measured: dict[str, Any]) -> list[dict[str, object]]:
    exports = {item["name"]: item for item in measured["exports"]}
    users = exports.get("users 12 months", {})
    twelve = [exports.get(f"{data_type} 12 months", {}) for data_type in TYPES]
    worst_p95 = (
        max(item["p95_s"] for item in twelve) if all("p95_s" in item for item in twelve) else None
    )
    cold: dict[str, Any] = next((item for name, item in exports.items() if ", cold" in name), {})
    rebuilt = "users, cold: every month rebuilt from day heads"
    return [
        targets.Verdict(targets.EXPORT_USERS_P50, users.get("p50_s"), "warm").as_dict(),
        targets.Verdict(targets.EXPORT_ANY_P95, worst_p95, "worst type, warm").as_dict(),
        targets.Verdict(targets.EXPORTER_PEAK_RSS, measured.get("exporter_peak_rss_mb")).as_dict(),
        targets.Verdict(targets.EXPORT_USERS_P50, cold.get("p50_s"), rebuilt).as_dict(),
        targets.Verdict(targets.EXPORT_ANY_P95, cold.get("p95_s"), rebuilt).as_dict(),
    ]


def _line(item: dict[str, Any]) -> str:
    if "error" in item:
        return f"  {item['name']}: FAILED — {item['error']}"
    return (
        f"  {item['name']}: p50 {item['p50_s']:.2f} s, p95 {item['p95_s']:.2f} s, "
        f"{item['rows']:,} rows, {item['bytes'] / 1e6:.1f} MB"
    )
