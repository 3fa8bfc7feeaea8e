"""``usage-export api``: serve the HTTP Usage Export API against the configured broker and store."""

from __future__ import annotations

from typing import Any

from services.cli.runtime import register_service


def register(subparsers: Any) -> None:
    register_service(
        subparsers,
        "api",
        help="serve the HTTP Usage Export API (POST /export/{type})",
        description="Run the HTTP API (docs/api.md): API-key authenticated export requests, "
        "answered with their completions. Listens on USAGE_API_HOST:USAGE_API_PORT "
        "(default 127.0.0.1:8080); metrics and health on USAGE_API_METRICS_PORT. "
        "SIGTERM: stop listening, finish the requests in flight, exit 0.",
        runner="services.api.app:run_api",
    )
