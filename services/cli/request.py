"""``usage-export request``: publish one export request, wait for its completion, show it.

Exit status: 0 when the export succeeded, 1 when its completion reports a failure
(400/404/409/500/503), 2 when no completion arrived in time.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from shared.adapters.export_client import ExportClient, download, export_request
from shared.contracts.completions import ExportCompletion
from shared.contracts.export_buckets import BUCKET_NAMES
from shared.contracts.export_formats import FORMAT_NAMES
from shared.settings import Settings, load_settings

_TYPES = ("users", "assistants", "agents", "api_keys", "projects", "models")


def register(subparsers: Any) -> None:
    # One add_argument per option, spelled out: the shapes repeat across commands by design.
    parser = subparsers.add_parser(
        "request",
        help="request an export, wait for its completion, print it",
        description="Publish an export request (contract §3) to USAGE_TOPIC_EXPORT_REQUESTS, "
        "wait for its completion and print it; --download saves the file.",
    )
    parser.add_argument(
        "data_type", metavar="TYPE", choices=_TYPES, help=f"one of {', '.join(_TYPES)}"
    )
    parser.add_argument("--org", required=True, help="workspace id (org_id)")
    parser.add_argument(
        "--from",
        dest="from_date",
        required=True,
        help="YYYY-MM-DD or ISO 8601 date-time (wall time in --timezone)",
    )
    parser.add_argument(
        "--to",
        dest="to_date",
        required=True,
        help="YYYY-MM-DD (inclusive: the whole day) or ISO 8601 date-time",
    )
    parser.add_argument("--timezone", default="UTC", help="IANA timezone (default UTC)")
    parser.add_argument(
        "--group-by",
        default=None,
        help="subgroup rows: model (users, agents, api_keys); source or deployment (models)",
    )
    parser.add_argument(
        "--format",
        dest="export_format",
        choices=FORMAT_NAMES,
        default=None,
        help=f"the file's format: {', '.join(FORMAT_NAMES)} (default csv)",
    )
    parser.add_argument(
        "--bucket",
        choices=BUCKET_NAMES,
        default=None,
        help="one row per entity per day, week or month (in --timezone) with activity",
    )
    parser.add_argument(
        "--callback-url",
        default=None,
        metavar="URL",
        help="https URL that receives the completion as a signed POST (usage-export "
        "webhooks secret --org ORG makes the signing secret)",
    )
    parser.add_argument(
        "--destination",
        default=None,
        help="also copy the file to this destination (configured on the exporter: "
        "USAGE_DESTINATION_<NAME>_*)",
    )
    parser.add_argument("--request-id", default=None, help="default: a new UUID")
    parser.add_argument(
        "--download", metavar="DIR", type=Path, default=None, help="save the file into DIR"
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=180.0,
        metavar="SECONDS",
        help="how long to wait for the completion (default 180)",
    )
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    message = export_request(
        args.org,
        args.data_type,
        args.from_date,
        args.to_date,
        timezone=args.timezone,
        group_by=args.group_by,
        request_id=args.request_id,
        requested_by="usage-export-cli",
        export_format=args.export_format,
        bucket=args.bucket,
        callback_url=args.callback_url,
        destination=args.destination,
    )
    console = Console()
    return asyncio.run(_run(load_settings(), message, args.download, args.wait, console))


async def _run(
    settings: Settings,
    message: dict[str, Any],
    target: Path | None,
    wait_s: float,
    console: Console,
) -> int:
    console.print(
        f"requesting [bold]{message['data_type']}[/] export "
        f"[dim]{message['request_id']}[/] for {message['org_id']} ..."
    )
    async with ExportClient(settings) as client:
        try:
            completion = await client.request(message, within_s=wait_s)
        except TimeoutError:
            console.print(
                f"[red]no completion within {wait_s:g} s[/] - is the exporter "
                "running against this broker?"
            )
            return 2
    console.print(completion_table(completion))
    if completion.success and completion.data is not None and target is not None:
        path = target / completion.data.filePath.rsplit("/", 1)[-1]
        size = await download(completion.data.downloadUrl, path)
        console.print(f"saved {size:,} bytes to [bold]{path}[/]")
    return 0 if completion.success else 1


def completion_table(completion: ExportCompletion) -> Table:
    """A completion as a two-column table, green for success, red for failure."""
    ok = completion.success
    table = Table(
        title="export completed" if ok else "export failed",
        show_header=False,
        title_style="bold green" if ok else "bold red",
    )
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("request_id", completion.request_id)
    table.add_row("org_id", completion.org_id or "")
    if completion.data is not None:
        data = completion.data
        table.add_row("data type", data.dataType)
        table.add_row("format", data.format)
        table.add_row("records", f"{data.recordCount:,}")
        table.add_row("bytes", f"{data.bytes:,}")
        table.add_row("period", f"{data.dateRange['from']} .. {data.dateRange['to']}")
        table.add_row("ingested through", data.ingestedThrough or "unknown")
        table.add_row("file", data.filePath)
        table.add_row("sha256", data.sha256)
        table.add_row("url expires", data.expiresAt)
        table.add_row("download", data.downloadUrl)
    if completion.error is not None:
        table.add_row("status", f"{completion.error.status} {completion.error.error}")
        table.add_row("message", completion.error.message)
    return table
