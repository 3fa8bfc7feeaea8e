"""``usage-export status``: the broker and the store reachable? lag, dead letters, newest days.

Reads the same ``USAGE_*`` settings as the services (after ``usage-export up``:
``set -a; . DATA_DIR/usage.env; set +a``). Moves no offset. Exit status: 0 when the
broker and the store answer and every part could be read, 1 when some part could not be
read (the table says which), 3 when the broker or the store cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from services.ops.status import Status, gather_status
from shared import codec
from shared.settings import load_settings

UNREACHABLE = 3


def register(subparsers: Any) -> None:
    # One add_argument per option, spelled out: the shapes repeat across commands by design.
    parser = subparsers.add_parser(
        "status",
        help="can the broker and store be reached; lag, dead letters, newest day written",
        description="One look at a running deployment (the embedded stack or any "
        "configured one): broker and store reachability, the ingest, exporter and delivery groups' "
        "lag per partition with the time of the oldest unconsumed record, dead letters per "
        "reason and topic, and the newest UTC day written per workspace. Moves no offset.",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("--workspaces", type=int, default=20, help="workspaces listed at most (20)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds for each part (30)")
    parser.set_defaults(func=_status)


def _status(args: argparse.Namespace) -> int:
    settings = load_settings()
    status = asyncio.run(
        gather_status(settings, max_workspaces=args.workspaces, timeout_s=args.timeout)
    )
    if args.json:
        sys.stdout.write(codec.dumps(status.to_json()).decode() + "\n")
    else:
        render(status, Console())
    if not all(item.reachable for item in status.reachability):
        return UNREACHABLE
    return 0 if status.healthy else 1


def render(status: Status, console: Console) -> None:
    reach = Table(title="dependencies", title_justify="left")
    for column in ("what", "address", "from", "state"):
        reach.add_column(column)
    for item in status.reachability:
        state = "[green]reachable[/]" if item.reachable else f"[red]{escape(item.error or '')}[/]"
        reach.add_row(item.what, escape(item.address), item.setting, state)
    console.print(reach)
    for item in status.reachability:
        if not item.reachable:
            console.print(
                f"[red]cannot reach the {item.what} at {escape(item.address)} "
                f"({item.setting})[/]: start `usage-export up`, or load its settings with "
                "`set -a; . DATA_DIR/usage.env; set +a`"
            )

    for group in status.groups:
        oldest = group.oldest_unconsumed
        title = f"{group.group} on {group.topic}: lag {group.lag:,}" + (
            f", oldest unconsumed {oldest:%Y-%m-%d %H:%M:%S} UTC" if oldest else ""
        )
        table = Table(title=escape(title), title_justify="left")
        for column in ("partition", "committed", "log end", "lag", "oldest unconsumed (UTC)"):
            table.add_column(column, justify="right")
        for p in group.partitions:
            table.add_row(
                str(p.partition),
                "-" if p.committed is None else f"{p.committed:,}",
                f"{p.end:,}",
                f"{p.lag:,}",
                f"{p.oldest_unconsumed:%Y-%m-%d %H:%M:%S}" if p.oldest_unconsumed else "",
            )
        console.print(table)

    broker, store = (item.reachable for item in status.reachability)
    if broker:
        console.print(_letters(status))
    if store:
        console.print(_days(status))
    for problem in status.problems:
        console.print(f"[yellow]could not read {escape(problem)}[/]")


def _letters(status: Status) -> Table:
    letters = Table(title="dead letters", title_justify="left")
    for column in ("topic", "reason", "count"):
        letters.add_column(column)
    for topic, counts in status.dead_letters.items():
        if not counts:
            letters.add_row(escape(topic), "(none)", "0")
        for reason, count in counts.items():
            letters.add_row(escape(topic), escape(reason), f"{count:,}")
    return letters


def _days(status: Status) -> Table:
    days = Table(
        title=f"newest day written ({len(status.workspaces)} of "
        f"{status.workspaces_total} workspaces)",
        title_justify="left",
    )
    days.add_column("workspace")
    days.add_column("newest UTC day")
    for workspace in status.workspaces:
        newest = workspace.newest_day.isoformat() if workspace.newest_day else "(no facts)"
        days.add_row(escape(workspace.org_id), newest)
    return days
