"""``usage-export exporter``: run the exporter service against the configured broker and store."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from services.cli.runtime import run_until_signalled, setup_logging
from shared.settings import load_settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "exporter",
        help="answer export requests with CSV files and completion events",
        description="Run the exporter service (consumer group usage-exporter): export "
        "requests in, CSV files in the exports bucket and completions out. "
        "Configuration comes from USAGE_* environment variables. SIGTERM: stop "
        "fetching, finish the requests in flight, commit, exit 0.",
    )
    parser.add_argument("--log-level", default="INFO")
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    from services.exporter.app import run_exporter

    settings = load_settings()

    async def service(stop: asyncio.Event) -> None:
        await run_exporter(settings, stop=stop)

    return run_until_signalled(service)
