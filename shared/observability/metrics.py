"""The metrics of both services, each set bound to a registry of its own.

A registry per service (not prometheus_client's global one) lets ``usage-export up`` run
ingest and exporter in one process, and tests build as many as they like. Label values
are bounded on purpose: reasons are the validators' fixed categories, data types are
mapped onto the five of the contract (anything else is ``invalid``), partitions are the
topic's, and a partition's lag series is removed when the partition is revoked.
"""

from __future__ import annotations

import contextlib
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from shared.contracts.completions import ExportCompletion
from shared.contracts.requests import DataType

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_EXPORT_SECONDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_COUNTS = (0, 1, 10, 100, 1_000, 10_000, 100_000, 1_000_000)

__all__ = ["ApiMetrics", "ExporterMetrics", "IngestMetrics", "data_type_label", "new_registry"]


def _package_version() -> str:
    try:
        return version("usage-export")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def new_registry(service: str) -> CollectorRegistry:
    """A registry with process, platform and GC metrics and ``usage_build_info``."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    Info("usage_build", "Service and version of this process", registry=registry).info(
        {"service": service, "version": _package_version()}
    )
    return registry


# Every metric is declared in full (name, help, labels, buckets), though the shapes repeat:
# each class reads as its service's metric catalogue, as docs/operations.md lists it.
class IngestMetrics:
    """What ingest reports: throughput, dedup, dead letters, lag, flushes, working set."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.events_consumed = Counter(
            "usage_ingest_events_consumed", "Records fetched from usage.events", registry=registry
        )
        self.events_applied = Counter(
            "usage_ingest_events_applied",
            "Events that changed state (a new fact or dimension version)",
            registry=registry,
        )
        self.events_duplicated = Counter(
            "usage_ingest_events_duplicated",
            "Events dropped as already applied (dedup by org_id + event_id)",
            registry=registry,
        )
        self.events_dead_lettered = Counter(
            "usage_ingest_events_dead_lettered",
            "Events sent to the dead-letter topic, by reason",
            ["reason"],
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "usage_ingest_consumer_lag",
            "Records between the consumer's position and the partition's high watermark",
            ["topic", "partition"],
            registry=registry,
        )
        self.flush_seconds = Histogram(
            "usage_ingest_flush_seconds",
            "Time to make dirty state durable (one flush, before the commit)",
            buckets=_SECONDS,
            registry=registry,
        )
        self.flush_facts = Histogram(
            "usage_ingest_flush_facts",
            "Facts made durable by one flush",
            buckets=_COUNTS,
            registry=registry,
        )
        self.flush_states = Histogram(
            "usage_ingest_flush_states",
            "Day and dimension states written by one flush",
            buckets=_COUNTS,
            registry=registry,
        )
        self.flush_conflicts = Counter(
            "usage_ingest_flush_conflicts",
            "Conditional writes lost to another writer (reloaded and re-applied)",
            registry=registry,
        )
        self.commit_failures = Counter(
            "usage_ingest_commit_failures",
            "Offset commits refused (rebalance); the next owner re-reads and dedups",
            registry=registry,
        )
        self.cache_entries = Gauge(
            "usage_ingest_cache_entries", "States held in the working set", registry=registry
        )
        self.cache_facts = Gauge(
            "usage_ingest_cache_facts",
            "Facts known to the states held in the working set (its weight)",
            registry=registry,
        )

    def dead_lettered(self, reason: str) -> None:
        self.events_dead_lettered.labels(reason=reason).inc()

    def observe_flush(self, seconds: float, *, facts: int, states: int, conflicts: int) -> None:
        self.flush_seconds.observe(seconds)
        self.flush_facts.observe(facts)
        self.flush_states.observe(states)
        if conflicts:
            self.flush_conflicts.inc(conflicts)

    def set_lag(self, topic: str, partition: int, lag: int) -> None:
        self.consumer_lag.labels(topic=topic, partition=str(partition)).set(max(lag, 0))

    def forget_partition(self, topic: str, partition: int) -> None:
        """Drop a revoked partition's lag: another worker reports it now."""
        with contextlib.suppress(KeyError):
            self.consumer_lag.remove(topic, str(partition))

    def set_cache(self, *, entries: int, facts: int) -> None:
        self.cache_entries.set(entries)
        self.cache_facts.set(facts)


def data_type_label(data_type: str | None) -> str:
    """One of the contract's five data types (aliases folded), else ``invalid``."""
    if data_type is None:
        return "invalid"
    try:
        return DataType.parse(data_type).value
    except ValueError:
        return "invalid"


class ExporterMetrics:
    """What the exporter reports: exports by type and status, duration, output size."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.exports = Counter(
            "usage_exporter_exports",
            "Completions published, by data type and status (200, 400, 404, 500, 503)",
            ["data_type", "status"],
            registry=registry,
        )
        self.export_seconds = Histogram(
            "usage_exporter_export_duration_seconds",
            "Time from starting work on a request to its completion, by data type",
            ["data_type"],
            buckets=_EXPORT_SECONDS,
            registry=registry,
        )
        self.bytes_written = Counter(
            "usage_exporter_bytes_written",
            "CSV bytes written to the exports bucket",
            ["data_type"],
            registry=registry,
        )
        self.rows_written = Counter(
            "usage_exporter_rows_written",
            "CSV rows written (recordCount of successful completions)",
            ["data_type"],
            registry=registry,
        )
        self.in_flight = Gauge(
            "usage_exporter_requests_in_flight",
            "Requests fetched and not yet answered",
            registry=registry,
        )
        self.dead_lettered = Counter(
            "usage_exporter_requests_dead_lettered",
            "Requests sent to the dead-letter topic, by reason",
            ["reason"],
            registry=registry,
        )

    def observe_export(
        self,
        data_type: str | None,
        status: int,
        seconds: float,
        *,
        bytes_written: int = 0,
        rows: int = 0,
    ) -> None:
        label = data_type_label(data_type)
        self.exports.labels(data_type=label, status=str(status)).inc()
        self.export_seconds.labels(data_type=label).observe(seconds)
        if bytes_written:
            self.bytes_written.labels(data_type=label).inc(bytes_written)
        if rows:
            self.rows_written.labels(data_type=label).inc(rows)

    def observe_completion(
        self, completion: ExportCompletion, seconds: float, *, data_type: str | None = None
    ) -> None:
        """Everything a completion tells; ``data_type`` for failures, which do not carry it."""
        if completion.data is not None:
            self.observe_export(
                completion.data.dataType,
                200,
                seconds,
                bytes_written=completion.data.bytes,
                rows=completion.data.recordCount,
            )
            return
        status = completion.error.status if completion.error is not None else 500
        self.observe_export(data_type, status, seconds)


class ApiMetrics:
    """What the HTTP API reports: requests by route and status, latency, waits, refusals."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "usage_api_requests",
            "HTTP requests answered, by route (data type, 'status' or 'other') and status",
            ["route", "status"],
            registry=registry,
        )
        self.request_seconds = Histogram(
            "usage_api_request_duration_seconds",
            "Time to answer an HTTP request, by route",
            ["route"],
            buckets=_EXPORT_SECONDS,
            registry=registry,
        )
        self.auth_failures = Counter(
            "usage_api_auth_failures",
            "Requests refused with 401, by reason (missing, invalid, revoked, scope)",
            ["reason"],
            registry=registry,
        )
        self.waiting = Gauge(
            "usage_api_requests_waiting",
            "Requests waiting for their completion right now",
            registry=registry,
        )
        self.pending_answers = Counter(
            "usage_api_pending_answers",
            "Requests answered 202 because no completion came within the timeout",
            registry=registry,
        )

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route=route, status=str(status)).inc()
        self.request_seconds.labels(route=route).observe(seconds)


class SchedulerMetrics:
    """What the scheduler reports: rounds, publications, skipped periods, failures."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.rounds = Counter(
            "usage_scheduler_rounds", "Passes over every schedule", registry=registry
        )
        self.published = Counter(
            "usage_scheduler_requests_published",
            "Export requests of due periods published (re-publications included)",
            registry=registry,
        )
        self.skipped = Counter(
            "usage_scheduler_periods_skipped",
            "Periods passed over because they ended while their schedule was paused",
            registry=registry,
        )
        self.failures = Counter(
            "usage_scheduler_failures",
            "Schedules (or listings) a round could not finish: retried next round",
            registry=registry,
        )
