"""The delivery service's metrics (``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class DeliveryMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.accepted = Counter(
            "usage_webhook_deliveries_accepted",
            "Completions with a callback made into pending deliveries",
            registry=registry,
        )
        self.attempts = Counter(
            "usage_webhook_attempts",
            "Delivery tries, by result (delivered, failed)",
            ["result"],
            registry=registry,
        )
        self.dead = Counter(
            "usage_webhook_dead_letters",
            "Deliveries given up and moved to webhooks/dead/",
            registry=registry,
        )
        self.in_flight = Gauge(
            "usage_webhook_in_flight", "Deliveries being tried now", registry=registry
        )
