"""``usage-export delivery``: run the webhook delivery service."""

from __future__ import annotations

from typing import Any

from services.cli.runtime import register_service


def register(subparsers: Any) -> None:
    register_service(
        subparsers,
        "delivery",
        help="POST completions to their requests' callback URLs (signed, retried)",
        description="Run the webhook delivery service (consumer group usage-delivery): "
        "completions in, signed POSTs to each request's callback_url out, retried with "
        "backoff for USAGE_WEBHOOK_MAX_AGE_S, then dead-lettered under webhooks/dead/. "
        "Configuration comes from USAGE_* environment variables. SIGTERM: stop taking "
        "completions, let the tries in flight end, exit 0.",
        runner="services.delivery.app:run_delivery",
    )
