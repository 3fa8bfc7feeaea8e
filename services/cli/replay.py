"""``usage-export replay``: rebuild the stored facts of chosen days from usage.events."""

from __future__ import annotations

import argparse
import asyncio
import signal
from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from services.cli.runtime import setup_logging
from shared.settings import load_settings


def register(subparsers: Any) -> None:
    # One add_argument per option, spelled out: the shapes repeat across commands by design.
    parser = subparsers.add_parser(
        "replay",
        help="rebuild the stored events of some days from the events in usage.events",
        description=(
            "Re-read usage.events (from shortly before --from to the log end at the start) "
            "and rebuild each workspace's facts of the UTC days --from..--to in one commit: "
            "the topic's events plus stored events the topic no longer holds, each event "
            "once (an event already stored on another day stays there). Also builds the "
            "format-3 tables of a store migrating from an older format. Safe while ingest runs "
            "(serialized commits; the loser of a race reloads and recomputes). Interrupt "
            "with Ctrl-C and run the same command again to resume."
        ),
    )
    parser.add_argument(
        "--from",
        dest="first",
        required=True,
        type=date.fromisoformat,
        help="first UTC day, YYYY-MM-DD",
    )
    parser.add_argument(
        "--to",
        dest="last",
        required=True,
        type=date.fromisoformat,
        help="last UTC day, YYYY-MM-DD (inclusive)",
    )
    parser.add_argument(
        "--org",
        dest="orgs",
        action="append",
        default=[],
        help="only this workspace (repeatable); default: all",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=Path(".usage-export"),
        help="where progress is kept for resuming (default ./.usage-export)",
    )
    parser.add_argument(
        "--keep-work", action="store_true", help="keep the spilled events after a successful run"
    )
    parser.add_argument("--log-level", default="WARNING")
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    from services.ingest.replay import Progress as ReplayProgress
    from services.ingest.replay import Replay

    console = Console(stderr=True)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:
        tasks: dict[str, TaskID] = {}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                label = "reading events" if phase == "read" else "rebuilding workspaces"
                tasks[phase] = bar.add_task(label, total=total or 1, rate="")
            task = bar.tasks[tasks[phase]]
            elapsed = task.elapsed or 0.0
            unit = "events/s" if phase == "read" else "workspaces/s"
            rate = f"{done / elapsed:,.0f} {unit}" if elapsed > 0 else ""
            bar.update(tasks[phase], completed=done, total=total or 1, rate=rate)

        replay = Replay(
            load_settings(),
            first_day=args.first,
            last_day=args.last,
            orgs=args.orgs,
            work_dir=args.work_dir,
            progress=ReplayProgress(update=update),
        )

        async def run() -> None:
            loop = asyncio.get_running_loop()
            task = asyncio.current_task()
            assert task is not None
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, task.cancel)
            await replay.run()

        try:
            asyncio.run(run())
        except (KeyboardInterrupt, asyncio.CancelledError):
            console.print(
                f"[yellow]interrupted; run the same command again to resume "
                f"(progress in {replay.work_dir})"
            )
            return 130
    summary = replay.summary
    table = Table(title="replay summary", show_header=False)
    for label, value in (
        ("records read", summary.records_read),
        ("invalid (skipped)", summary.invalid),
        ("events in range", summary.facts_in_range),
        ("workspaces rewritten", summary.workspaces_rewritten),
        ("days rewritten", summary.days_rewritten),
        ("events before → after", f"{summary.facts_before} → {summary.facts_after}"),
        ("kept from store (not in topic)", summary.kept_from_store),
        ("left on another day (stored there first)", summary.stored_elsewhere),
        ("dimension versions added", summary.dimension_versions_added),
        ("commit races retried", summary.conflicts),
    ):
        table.add_row(label, str(value))
    Console().print(table)
    if not args.keep_work:
        replay.discard_work()
    return 0
