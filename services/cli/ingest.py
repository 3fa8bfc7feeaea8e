"""``usage-export ingest``: run the ingest service against the configured broker and store."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from services.cli.runtime import run_until_signalled, setup_logging
from shared.settings import load_settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "ingest",
        help="consume usage.events into per-day aggregates in object storage",
        description="Run the ingest service (consumer group usage-ingest). Configuration "
        "comes from USAGE_* environment variables. SIGTERM: stop fetching, "
        "flush, commit, exit 0.",
    )
    parser.add_argument("--log-level", default="INFO")
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    from services.ingest.app import run_ingest

    settings = load_settings()

    async def service(stop: asyncio.Event) -> None:
        await run_ingest(settings, stop=stop)

    return run_until_signalled(service)
