"""A dataset for the export and replay benchmarks: simulated workspaces produced into a
fresh topic, ingested by the real ingest service (a subprocess), which is then stopped,
and tidied by the real compactor (another subprocess: every closed month merged and rolled
up, as a deployment keeps them), which is stopped in turn."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from deltalake import DeltaTable

from bench.compactor import CompactorRun, compact_until_tidy
from bench.consumers import ConsumerRun, run_service
from bench.stack import new_tag, run_settings, workload_settings
from bench.workload import Produced, Tap, produce_simulation
from services.compactor.janitor import files_per_span, plan
from shared.columnar.rollups import (
    ROLLUP_KINDS,
    facts_files,
    open_rollups,
    pending,
    rolled_up_sources,
)
from shared.columnar.tables import FACTS_TABLE, TableStore
from shared.settings import Settings
from shared.simulation import SimConfig

#: Share of message events among a workspace's valid events in the simulator (measured
#: ~0.83); used to size ``events`` so that at least the asked number are messages.
MESSAGE_SHARE = 0.8


@dataclass(frozen=True, slots=True)
class WorkspaceSpec:
    """One simulated workspace (``org_id`` is ``{prefix}-0001``)."""

    prefix: str
    users: int
    messages: int
    seed: int
    agents: int = 1_000
    projects: int = 300
    api_keys: int = 100
    models: int = 20

    @property
    def org_id(self) -> str:
        return f"{self.prefix}-0001"

    def sim_config(self, now: datetime) -> SimConfig:
        return SimConfig(
            seed=self.seed,
            orgs=1,
            events=math.ceil(self.messages / MESSAGE_SHARE),
            end=now,
            users=self.users,
            agents=self.agents,
            projects=self.projects,
            api_keys=self.api_keys,
            models=self.models,
            dup_rate=0.05,
            late_rate=0.02,
            org_prefix=self.prefix,
        )


def _tidied(settings: Settings, orgs: list[str], now: datetime) -> bool:
    """Whether the compactor has nothing left to merge, compact or roll up in ``orgs``
    (what it does within ``USAGE_COMPACTION_INTERVAL_S`` of a commit)."""
    store = TableStore.of(settings)
    options = dict(store.options)
    for org in orgs:
        table = DeltaTable(store.uri(org, FACTS_TABLE), storage_options=options)
        if plan(files_per_span(table), now.date()):
            return False
        for kind in ROLLUP_KINDS:
            rollups = open_rollups(kind, store.uri(org, kind.table), options, create=False)
            if pending(facts_files(table), rolled_up_sources(kind, rollups)):
                return False
    return True


@dataclass
class Dataset:
    settings: Settings  # the topic, buckets and groups holding the ingested data
    produced: Produced
    ingest: ConsumerRun
    compactor: CompactorRun

    def as_dict(self) -> dict[str, Any]:
        return {
            "workload": self.produced.as_dict(),
            "events_per_s": self.ingest.events_per_s,
            "ingest_consume_s": self.ingest.consume_s,
            "ingest_peak_rss_mb": self.ingest.peak_rss_mb,
            "ingest_error": self.ingest.error,
            # The compactor runs after ingest, alone: from its spawn until every closed
            # month was merged and rolled up; its memory is its own, not ingest's.
            "compactor_settle_s": self.compactor.settle_s,
            "compactor_peak_rss_mb": self.compactor.peak_rss_mb,
            "compactor_error": self.compactor.error,
        }


async def build_dataset(
    base: Settings,
    workspaces: list[WorkspaceSpec],
    *,
    now: datetime,
    work_dir: Path,
    say: Callable[[str], None],
    timeout_s: float = 7200.0,
    tap: Tap | None = None,
) -> Dataset:
    """Produce the workspaces (``tap`` sees every record), then ingest them."""
    workload = await workload_settings(base, new_tag("d"))
    configs = [spec.sim_config(now) for spec in workspaces]
    say(
        "producing "
        + ", ".join(f"{spec.org_id} ({spec.users:,} users, ≥{spec.messages:,} messages)"
                    for spec in workspaces)
        + " ..."
    )  # fmt: skip
    produced = await produce_simulation(workload, configs, now=now, tap=tap)
    say(f"produced {produced.records:,} records in {produced.seconds:.0f} s; ingesting ...")
    settings = await run_settings(workload, new_tag("x"))
    orgs = [spec.org_id for spec in workspaces]
    ingest = await run_service(
        settings,
        produced.ends,
        produced.records,
        work_dir / f"dataset-ingest-{settings.ingest_group}.log",
        timeout_s=timeout_s,
    )
    if ingest.error is not None:
        raise RuntimeError(f"ingesting the dataset failed: {ingest.error}")
    say(
        f"ingested at {ingest.events_per_s or 0:,.0f} events/s "
        f"(peak RSS {ingest.peak_rss_mb or 0:.0f} MB); compacting ..."
    )
    compactor = await compact_until_tidy(
        settings,
        lambda: asyncio.to_thread(_tidied, settings, orgs, now),
        work_dir / f"dataset-compactor-{settings.ingest_group}.log",
    )
    if compactor.error is not None:
        raise RuntimeError(f"compacting the dataset failed: {compactor.error}")
    say(
        f"the compactor had merged and rolled up the closed months {compactor.settle_s or 0:.0f} s "
        f"after its start (peak RSS {compactor.peak_rss_mb or 0:.0f} MB)"
    )
    return Dataset(settings=settings, produced=produced, ingest=ingest, compactor=compactor)
