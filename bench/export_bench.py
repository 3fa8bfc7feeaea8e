"""``python -m bench export``: end-to-end latency of exports and the exporter's memory.

One large workspace (``--users``, 1,000 agents, 300 projects, 100 API keys, 20 models,
12 months of simulated, skewed activity with ``--messages`` message events) plus
smaller/larger ones for the workspace-size series is ingested by the real ingest
service. The real exporter is started and, once it has joined its group (its log says
so: no request before), answers one request at a time: first the 12-month users export
of the large workspace — *the first export after ingest*, a single figure — then each of
the five types over 12 months ``--export-runs`` times, the users export over 1 day /
1 month, and the users export of every other workspace size (whose first run is its
first export).

In the same run, after the exporter has stopped, **the OLAP peer** (:mod:`bench.olap`):
the large workspace's raw events, landed as Parquet on local disk while the dataset was
produced, and the same 12-month users export computed by DuckDB from them (dedup by
``event_id`` included), ``--export-runs`` times.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import machine, olap, targets
from bench.dataset import Dataset, WorkspaceSpec, build_dataset
from bench.exports import TYPES, RunningExporter, windows
from bench.replay_bench import replay_and_compare
from bench.stack import embedded_stack
from bench.stats import Summary, percentile
from shared.domain.window import resolve_window

FIRST = "users 12 months, first after ingest"
USERS_12 = "users 12 months"
PEER = "OLAP peer: DuckDB over the raw events in Parquet, users 12 months"


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
    label: str,
    runs: int,
    *,
    users: int,
) -> dict[str, Any]:
    """``runs`` sequential requests (distinct request ids): latency p50/p95, rows, bytes.

    The window is resolved from the UTC date of each request, as the exporter resolves it
    with its own clock: a run that crosses UTC midnight asks for the 12 months before the
    new day (a window fixed at the start would then be 12 months and a day, refused)."""
    seconds: list[float] = []
    item: dict[str, Any] = {
        "name": name,
        "type": data_type,
        "window": label,
        "org_id": org_id,
        "users": users,
    }
    for _ in range(runs):
        window = windows(datetime.now(UTC).date())[label]
        item.update({"from": window.first.isoformat(), "to": window.last.isoformat()})
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
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Every export of the benchmark against an ingested dataset."""
    main, *others = config.workspaces()
    found: list[dict[str, Any]] = []
    log_path = config.work_dir / f"exporter-{dataset.settings.exporter_group}.log"
    async with RunningExporter(dataset.settings, log_path) as exporter:
        joined_s = await exporter.joined()
        say(f"exporter joined its group {joined_s:.1f} s after its start (no request yet)")
        first = await measure(
            exporter, FIRST, main.org_id, "users", "12 months", 1, users=main.users
        )
        found.append(first)
        say(_line(first))

        plan = [
            (f"{data_type} 12 months", main, data_type, "12 months", config.runs)
            for data_type in TYPES
        ]
        plan += [
            (f"users {label}", main, "users", label, config.runs) for label in ("1 month", "1 day")
        ]
        plan += [
            (f"users 12 months, {spec.users:,}-user workspace", spec, "users",
             "12 months", config.runs)
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
        "exporter_join_s": joined_s,
    }


async def run_peer(
    landing: olap.Landing, config: ExportConfig, say: Callable[[str], None]
) -> dict[str, Any]:
    """The OLAP peer's 12-month users export of the large workspace, as ours is asked
    (its window resolved when it runs, as ours are)."""
    now = datetime.now(UTC)
    twelve = windows(now.date())["12 months"]
    window = resolve_window(
        twelve.first.isoformat(), "UTC", twelve.last.isoformat(), "UTC", now=now
    )
    peer = await olap.measure(landing, window.start_ms, window.end_ms, config.runs, name=PEER)
    peer.update(window=twelve.label, users=config.users, org_id=landing.org_id)
    say(_line(peer))
    return peer


async def run(
    config: ExportConfig, say: Callable[[str], None], *, with_replay: bool = False
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The export section (ours and the OLAP peer), and (``with_replay``) the replay
    section measured on the same dataset's main workspace afterwards."""
    now = datetime.now(UTC)
    load_before = machine.load_average()
    replayed: dict[str, Any] | None = None
    main = config.workspaces()[0]
    landing = olap.Landing(config.work_dir / f"olap-raw-{main.org_id}", main.org_id)
    async with embedded_stack() as stack:
        dataset = await build_dataset(
            stack.settings, config.workspaces(), now=now, work_dir=config.work_dir, say=say,
            tap=landing.take,
        )  # fmt: skip
        landing.close()
        say(
            f"landed {landing.rows:,} raw events of {main.org_id} in {landing.files} Parquet "
            f"files ({landing.bytes / 1e6:.1f} MB, {landing.seconds:.0f} s)"
        )
        measured = await run_exports(dataset, config, say)
        measured["olap_peer"] = await run_peer(landing, config, say)
        if with_replay:
            replayed = await replay_and_compare(
                dataset, main.org_id, datetime.now(UTC).date(), config.work_dir, say
            )
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
            "then complete in S3), one request at a time; p50/p95 nearest-rank over runs. "
            "OLAP peer: seconds from a fresh DuckDB connection to its CSV written on local "
            "disk, run in the benchmark's process after the exporter stopped"
        ),
        **measured,
        "ours_over_peer_p50": olap.ratio(
            _exports(measured).get(USERS_12, {}).get("p50_s"), measured["olap_peer"]["p50_s"]
        ),
        "targets": verdicts(measured),
    }
    return section, replayed


def _exports(measured: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in measured["exports"]}


def verdicts(measured: dict[str, Any]) -> list[dict[str, object]]:
    """Issue 12's export targets, from what :func:`run_exports` and :func:`run_peer`
    measured (a figure that is missing gives a verdict of ``None``)."""
    exports = _exports(measured)
    users = exports.get(USERS_12, {})
    twelve = [exports.get(f"{data_type} 12 months", {}) for data_type in TYPES]
    worst_p95 = (
        max(item["p95_s"] for item in twelve) if all("p95_s" in item for item in twelve) else None
    )
    largest = next(
        (
            item
            for name, item in exports.items()
            if name.startswith(f"{USERS_12}, ") and item.get("users") == 100_000
        ),
        {},
    )
    peer = measured.get("olap_peer", {})
    vs_peer = olap.ratio(users.get("p50_s"), peer.get("p50_s"))
    return [
        targets.Verdict(targets.EXPORT_USERS_P50, users.get("p50_s")).as_dict(),
        targets.Verdict(targets.EXPORT_FIRST, exports.get(FIRST, {}).get("p50_s")).as_dict(),
        targets.Verdict(targets.EXPORT_VS_OLAP, vs_peer, "same run").as_dict(),
        targets.Verdict(targets.EXPORT_ANY_P95, worst_p95, "worst type").as_dict(),
        targets.Verdict(targets.EXPORT_LARGEST, largest.get("p95_s"), "p95").as_dict(),
        targets.Verdict(targets.EXPORTER_PEAK_RSS, measured.get("exporter_peak_rss_mb")).as_dict(),
    ]


def _line(item: dict[str, Any]) -> str:
    if "error" in item:
        return f"  {item['name']}: FAILED — {item['error']}"
    return (
        f"  {item['name']}: p50 {item['p50_s']:.2f} s, p95 {item['p95_s']:.2f} s, "
        f"{item['rows']:,} rows, {item['bytes'] / 1e6:.1f} MB"
    )
