"""``usage-export ingest``: run the ingest service against the configured broker and store."""

from __future__ import annotations

from typing import Any

from services.cli.runtime import register_service


def register(subparsers: Any) -> None:
    register_service(
        subparsers,
        "ingest",
        help="consume usage.events into per-day aggregates in object storage",
        description="Run the ingest service (consumer group usage-ingest). Configuration "
        "comes from USAGE_* environment variables. SIGTERM: stop fetching, "
        "flush, commit, exit 0.",
        runner="services.ingest.app:run_ingest",
    )
