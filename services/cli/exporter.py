"""``usage-export exporter``: run the exporter service against the configured broker and store."""

from __future__ import annotations

from typing import Any

from services.cli.runtime import register_service


def register(subparsers: Any) -> None:
    register_service(
        subparsers,
        "exporter",
        help="answer export requests with CSV files and completion events",
        description="Run the exporter service (consumer group usage-exporter): export "
        "requests in, CSV files in the exports bucket and completions out. "
        "Configuration comes from USAGE_* environment variables. SIGTERM: stop "
        "fetching, finish the requests in flight, commit, exit 0.",
        runner="services.exporter.app:run_exporter",
    )
