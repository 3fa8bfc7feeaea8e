"""``python -m bench ingest``: events/s and peak RSS of the ingest service against peers
consuming the same topic (see :mod:`bench.consumers` for what is timed), on two
workloads of ``--events`` events each, each produced once into a topic of its own:

* **several workspaces** (``--orgs``, 40 users each): the keys spread them over a few
  partitions;
* **one big workspace** (``--big-users``, 10,000 by default, with the export
  benchmark's 1,000 agents, 300 projects, 100 API keys and 20 models): every event in
  one partition, so its throughput is the ceiling for the largest customer.

Ingest runs alone: the compactor (month merges, roll-ups, retention) is a service of its
own since session 12 and is not started here (the export benchmark runs it and reports
its memory apart).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import machine, targets
from bench.consumers import BARE, FAUST, QUIX, SERVICE, ConsumerRun, run_peer, run_service
from bench.dataset import WorkspaceSpec
from bench.profile import profile_service
from bench.stack import embedded_stack, new_tag, run_settings, workload_settings
from bench.stats import Summary
from bench.workload import Produced, produce_simulation
from shared.settings import Settings
from shared.simulation import SimConfig

PEERS = (BARE, FAUST, QUIX)


@dataclass(frozen=True)
class IngestConfig:
    events: int = 200_000
    runs: int = 3
    orgs: int = 5
    seed: int = 11
    peers: tuple[str, ...] = PEERS
    timeout_s: float = 900.0
    profile: bool = False
    work_dir: Path = field(default_factory=lambda: Path("."))
    big_users: int = 10_000  # 0: no one-workspace workload

    def workloads(self, now: datetime) -> dict[str, SimConfig]:
        """The workloads by name, in the order they run (the first is the issue's
        "1,000,000-event workload" of the faust target)."""
        found = {
            SEVERAL: SimConfig(
                seed=self.seed, orgs=self.orgs, events=self.events, dup_rate=0.05,
                late_rate=0.02, end=now,
            ),
        }  # fmt: skip
        if self.big_users:
            big = WorkspaceSpec("big", self.big_users, 0, self.seed + 1).sim_config(now)
            found[ONE_BIG] = replace(big, events=self.events)
        return found


SEVERAL = "several workspaces"
ONE_BIG = "one big workspace"


def summarise(runs: list[ConsumerRun]) -> dict[str, Any]:
    """Median/min/max of the successful runs of one consumer, and every run's errors."""
    good = [run for run in runs if run.error is None and run.events_per_s is not None]
    section: dict[str, Any] = {
        "runs": [run.as_dict() for run in runs],
        "errors": [run.error for run in runs if run.error is not None],
    }
    if good:
        section["events_per_s"] = Summary.of([run.events_per_s or 0.0 for run in good]).as_dict()
        section["consume_s"] = Summary.of([run.consume_s or 0.0 for run in good]).as_dict()
        section["wall_s"] = Summary.of([run.wall_s or 0.0 for run in good]).as_dict()
        rss = [run.peak_rss_mb for run in good if run.peak_rss_mb is not None]
        if rss:
            section["peak_rss_mb"] = Summary.of(rss).as_dict()
    return section


def median_of(section: dict[str, Any], figure: str) -> float | None:
    summary = section.get(figure)
    return None if summary is None else float(summary["median"])


def verdicts(
    consumers: dict[str, dict[str, Any]], *, versus_faust: bool
) -> list[dict[str, object]]:
    """Issue 12's ingest targets on one workload, from the medians (the faust one only
    when ``versus_faust``: the first workload's)."""
    service = median_of(consumers.get(SERVICE, {}), "events_per_s")
    found: list[dict[str, object]] = []
    compared = ((FAUST, targets.INGEST_VS_FAUST),) if versus_faust else ()
    for peer, target in (*compared, (BARE, targets.INGEST_VS_CEILING)):
        if peer not in consumers:
            continue
        rate = median_of(consumers[peer], "events_per_s")
        ratio = None if service is None or not rate else service / rate
        note = "" if rate else "peer did not complete: see its errors"
        found.append(targets.Verdict(target, ratio, note).as_dict())
    rss = median_of(consumers.get(SERVICE, {}), "peak_rss_mb")
    if rss is not None:
        runs = consumers[SERVICE]["peak_rss_mb"]
        rss = float(runs["max"])  # a memory bound holds for the worst run
    found.append(targets.Verdict(targets.INGEST_PEAK_RSS, rss, "max over runs").as_dict())
    return found


def ratios(consumers: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """The service's median events/s over each peer's (a peer that did not complete: None)."""
    service = median_of(consumers.get(SERVICE, {}), "events_per_s")
    found: dict[str, float | None] = {}
    for name, section in consumers.items():
        if name == SERVICE:
            continue
        rate = median_of(section, "events_per_s")
        found[name] = None if service is None or not rate else service / rate
    return found


async def run(config: IngestConfig, say: Callable[[str], None]) -> dict[str, Any]:
    now = datetime.now(UTC)
    load_before = machine.load_average()
    say(f"{SERVICE} runs alone: the compactor is another service, not started here")
    measured: dict[str, dict[str, Any]] = {}
    async with embedded_stack() as stack:
        for index, (name, sim) in enumerate(config.workloads(now).items()):
            say(f"workload {name!r}:")
            found = await _one_workload(stack.settings, sim, config, say)
            sections = found["consumers"]
            found["ratios"] = ratios(sections)
            found["targets"] = verdicts(sections, versus_faust=index == 0)
            measured[name] = {"config": {**asdict(sim), "start": None, "end": now.isoformat()}}
            measured[name].update(found)
    every = [
        {**verdict, "note": f"{name}; {verdict['note']}" if verdict["note"] else name}
        for name, section in measured.items()
        for verdict in section["targets"]
    ]
    return {
        "config": {
            "events": config.events,
            "runs": config.runs,
            "peers": list(config.peers),
            "end": now.isoformat(),
            "compactor": "not run: ingest alone (the compactor is a service of its own)",
        },
        "load_average_before": load_before,
        "measures": (
            "events/s = records in the topic / consume_s; consume_s = first fetch (service: "
            "its 'assigned' log line; peers: first record taken) until the group's committed "
            "offsets reach the topic end (service: every event durable in S3); wall_s = "
            "process spawn until then (interpreter start, imports and group join included); "
            "the service is ingest alone, without the compactor"
        ),
        "workloads": measured,
        "targets": every,
    }


async def _one_workload(
    base: Settings, sim: SimConfig, config: IngestConfig, say: Callable[[str], None]
) -> dict[str, Any]:
    """Produce ``sim`` into a topic of its own, then every consumer ``runs`` times."""
    consumers: dict[str, list[ConsumerRun]] = {name: [] for name in (SERVICE, *config.peers)}
    workload = await workload_settings(base, new_tag("w"))
    say(f"producing {sim.events:,} simulated events into {workload.topic_events} ...")
    produced = await produce_simulation(workload, [sim], now=sim.end or datetime.now(UTC))
    say(f"produced {produced.records:,} records in {produced.seconds:.0f} s")
    for index in range(config.runs):
        for name in consumers:
            say(f"run {index + 1}/{config.runs}: {name} ...")
            outcome = await _one_run(name, workload, produced, config)
            consumers[name].append(outcome)
            say(_line(outcome))
    found: dict[str, Any] = {
        "workload": produced.as_dict(),
        "consumers": {name: summarise(runs) for name, runs in consumers.items()},
    }
    if config.profile:
        say("profiling one more service run with py-spy ...")
        settings = await run_settings(workload, new_tag("p"))
        found["profile"] = await profile_service(
            settings, produced.ends, config.work_dir, timeout_s=config.timeout_s
        )
    return found


async def _one_run(
    name: str, workload: Any, produced: Produced, config: IngestConfig
) -> ConsumerRun:
    settings = await run_settings(workload, new_tag("r"))
    log_dir = config.work_dir
    if name == SERVICE:
        return await run_service(
            settings,
            produced.ends,
            produced.records,
            log_dir / f"service-{settings.ingest_group}.log",
            timeout_s=config.timeout_s,
        )
    expected = produced.types["message"] if name == QUIX else produced.records
    return await run_peer(
        name,
        settings,
        produced.ends,
        produced.records,
        expected=expected,
        work_dir=log_dir,
        timeout_s=config.timeout_s,
    )


def _line(run: ConsumerRun) -> str:
    if run.error is not None:
        return f"  {run.consumer}: FAILED — {run.error.splitlines()[0][:300]}"
    rate = run.events_per_s or 0.0
    rss = f"{run.peak_rss_mb:.0f} MB" if run.peak_rss_mb is not None else "?"
    return (
        f"  {run.consumer}: {rate:,.0f} events/s (consume {run.consume_s:.1f} s, "
        f"wall {run.wall_s:.1f} s), peak RSS {rss}"
    )
