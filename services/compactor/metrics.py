"""The compactor's metrics (``/metrics``)."""

from __future__ import annotations

from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge

from services.compactor.janitor import Sweep

#: A round tidies the workspaces with new commits; the full pass every one of the shard's.
PassKind = Literal["round", "full"]


# Every metric is declared in full (name, help, labels), as in shared/observability/metrics.py:
# the class reads as the service's metric catalogue, as docs/operations.md lists it.
class CompactorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.passes = Counter(
            "usage_compactor_passes",
            "Passes finished, by kind (round: workspaces with new commits; full: all)",
            ["kind"],
            registry=registry,
        )
        self.changed = Counter(
            "usage_compactor_workspaces_changed",
            "Workspaces found with facts commits the compactor had not seen",
            registry=registry,
        )
        self.tidied = Counter(
            "usage_compactor_workspaces_tidied",
            "Workspaces tidied (a round's or the full pass's)",
            registry=registry,
        )
        self.merged_months = Counter(
            "usage_compactor_months_merged",
            "Closed months whose day files were merged into a month file",
            registry=registry,
        )
        self.compacted_days = Counter(
            "usage_compactor_days_compacted",
            "Days of the current month whose files were compacted into one",
            registry=registry,
        )
        self.rollups = Counter(
            "usage_compactor_rollups",
            "Roll-ups made (of month files, and merged ones)",
            registry=registry,
        )
        self.expired_files = Counter(
            "usage_compactor_files_expired",
            "Facts files that held days past the retention (full pass)",
            registry=registry,
        )
        self.vacuumed_files = Counter(
            "usage_compactor_files_vacuumed",
            "Unreferenced data files deleted (full pass)",
            registry=registry,
        )
        self.fenced = Counter(
            "usage_compactor_fenced",
            "Workspaces whose pass a concurrent commit refused part way: tidied next round",
            registry=registry,
        )
        self.failures = Counter(
            "usage_compactor_failures",
            "Passes the store failed part way: the rest is tried next round",
            registry=registry,
        )
        self.last_pass_seconds = Gauge(
            "usage_compactor_last_pass_seconds",
            "Duration of the last finished pass, by kind",
            ["kind"],
            registry=registry,
        )

    def observe(self, kind: PassKind, done: Sweep, seconds: float) -> None:
        self.passes.labels(kind=kind).inc()
        self.last_pass_seconds.labels(kind=kind).set(seconds)
        self.tidied.inc(done.workspaces)
        self.merged_months.inc(done.merged_months)
        self.compacted_days.inc(done.compacted_days)
        self.rollups.inc(done.rolled_up_files)
        self.expired_files.inc(done.expired_files)
        self.vacuumed_files.inc(done.vacuumed_files)
        self.fenced.inc(done.fenced)
