"""Metrics and health for the services: an HTTP server, readiness checks, metric sets.

``ObservabilityServer`` serves ``/metrics``, ``/health/live`` and ``/health/ready``;
``checks`` has readiness checks for the broker and the store; ``metrics`` defines
``IngestMetrics``, ``ExporterMetrics`` and ``ApiMetrics``, each bound to a per-service registry from
``new_registry``. Structured logging is ``shared.adapters.logging``.
"""

from shared.observability.checks import (
    broker_check,
    flag_check,
    service_checks,
    store_check,
    tcp_reachable,
)
from shared.observability.metrics import (
    ApiMetrics,
    ExporterMetrics,
    IngestMetrics,
    SchedulerMetrics,
    new_registry,
)
from shared.observability.server import ObservabilityServer, ReadinessCheck

__all__ = [
    "ApiMetrics",
    "ExporterMetrics",
    "IngestMetrics",
    "ObservabilityServer",
    "ReadinessCheck",
    "SchedulerMetrics",
    "broker_check",
    "flag_check",
    "new_registry",
    "service_checks",
    "store_check",
    "tcp_reachable",
]
