"""``python -m bench ingest|export|replay|all``: run, print tables, update results.json."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from bench import machine, procs, report, results
from bench.consumers import BARE, FAUST, QUIX

_PEER_NAMES = {"bare": BARE, "faust": FAUST, "quix": QUIX}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks on the embedded stack; each merges its figures into "
        "bench/results.json.",
    )
    parser.add_argument("--results", type=Path, default=results.DEFAULT_PATH)
    parser.add_argument(
        "--work-dir", type=Path, default=None, help="logs and profiles (default: a temp dir)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    ingest = commands.add_parser("ingest", help="ingest throughput vs faust, Quix, bare fold")
    _ingest_options(ingest)
    export = commands.add_parser("export", help="export latency and exporter memory")
    _export_options(export)
    export.add_argument(
        "--replay", action="store_true", help="then the replay benchmark on the same dataset"
    )
    replay = commands.add_parser("replay", help="replay throughput; exports unchanged after")
    _replay_options(replay)
    every = commands.add_parser("all", help="ingest, then export and replay on one dataset")
    _ingest_options(every)
    _export_options(every)
    return parser


def _ingest_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=200_000, help="simulated events")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--orgs", type=int, default=5)
    parser.add_argument(
        "--big-users",
        type=int,
        default=10_000,
        help="users of the one-workspace workload (the same --events; 0 to skip it)",
    )
    parser.add_argument(
        "--peers",
        default="bare,faust,quix",
        help="comma-separated subset of bare,faust,quix ('' for none)",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="per run, seconds")
    parser.add_argument("--profile", action="store_true", help="one more run under py-spy")


def _export_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=5_000_000)
    parser.add_argument("--export-runs", type=int, default=5)
    parser.add_argument(
        "--scale-users",
        default="1000,100000",
        help="other workspace sizes for the users export ('' for none)",
    )
    parser.add_argument(
        "--scale-messages", type=int, default=500_000, help="events of each other workspace"
    )


def _replay_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--messages", type=int, default=300_000)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console()
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="usage-bench-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    console.print(f"logs and profiles in {work_dir}")
    say: Callable[[str], None] = console.print
    status = 0
    # SIGTERM as Ctrl-C: the run unwinds and stops its servers and services, instead of
    # dying with them still running.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        finished = asyncio.run(_run(args, work_dir, say))
    finally:
        procs.kill_leftovers()
    for name, section in finished:
        results.record(args.results, name, section, machine.describe())
        _print(name, section, console)
        if any(verdict["passed"] is not True for verdict in section.get("targets", [])):
            status = 0  # a missed target is a finding, not a crash: exit 0 regardless
    console.print(f"figures merged into {args.results}")
    return status


async def _run(
    args: argparse.Namespace, work_dir: Path, say: Callable[[str], None]
) -> list[tuple[str, dict[str, Any]]]:
    from bench import export_bench, ingest_bench, replay_bench

    done: list[tuple[str, dict[str, Any]]] = []
    if args.command in ("ingest", "all"):
        peers = tuple(_PEER_NAMES[name] for name in args.peers.split(",") if name)
        config = ingest_bench.IngestConfig(
            events=args.events,
            runs=args.runs,
            orgs=args.orgs,
            peers=peers,
            timeout_s=args.timeout,
            profile=args.profile,
            work_dir=work_dir,
            big_users=args.big_users,
        )
        done.append(("ingest", await ingest_bench.run(config, say)))
    if args.command in ("export", "all"):
        exports, replayed = await export_bench.run(
            export_bench.ExportConfig(
                users=args.users,
                messages=args.messages,
                runs=args.export_runs,
                scale_users=tuple(int(users) for users in args.scale_users.split(",") if users),
                scale_messages=args.scale_messages,
                work_dir=work_dir,
            ),
            say,
            with_replay=args.command == "all" or args.replay,
        )
        done.append(("export", exports))
        if replayed is not None:
            done.append(("replay", replayed))
    if args.command == "replay":
        config_replay = replay_bench.ReplayConfig(
            users=args.users, messages=args.messages, work_dir=work_dir
        )
        done.append(("replay", await replay_bench.run(config_replay, say)))
    return done


def _print(name: str, section: dict[str, Any], console: Console) -> None:
    printer = {
        "ingest": report.print_ingest,
        "export": report.print_export,
        "replay": report.print_replay,
    }[name]
    printer(section, console)


if __name__ == "__main__":
    sys.exit(main())
