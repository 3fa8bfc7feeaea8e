"""``usage-export simulate``: produce a realistic, deterministic usage-event stream.

Records come from :func:`shared.simulation.simulate` and go to Kafka (keyed by org id,
as contract §1 requires), or to an NDJSON file for inspection, or nowhere
(``--dry-run``, which still prints the summary). Sends are pipelined: futures are
awaited in batches, so the producer's own batching does the work, and the command
fails loudly if any record was not acknowledged — except values over the broker's size
limit, which the simulator emits on purpose as invalid input and are counted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from datetime import datetime
from typing import IO, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from shared import codec
from shared.clock import Clock, system_clock
from shared.simulation import SimConfig, SimRecord, simulate

_BATCH = 5_000


def register(subparsers: Any) -> None:
    # One add_argument per option, spelled out: the shapes repeat across commands by design.
    parser = subparsers.add_parser(
        "simulate",
        help="produce simulated usage events (deterministic for a seed and --end)",
        description="Generate a realistic usage-event stream - several workspaces, "
        "heavy-tailed activity, duplicates, late and optionally invalid events - and "
        "produce it to Kafka, write it as NDJSON, or only summarise it.",
    )
    parser.add_argument("--orgs", type=int, default=3, help="workspaces (default 3)")
    parser.add_argument("--events", type=int, default=10_000, help="distinct valid events")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--days", type=float, default=364.0, help="span ending at --end")
    parser.add_argument(
        "--end",
        type=_aware_datetime,
        default=None,
        help="ISO 8601 end of the span with offset (default: now)",
    )
    parser.add_argument("--dup-rate", type=float, default=0.05)
    parser.add_argument("--late-rate", type=float, default=0.02)
    parser.add_argument("--invalid-rate", type=float, default=0.0)
    for name, default in (
        ("users", 40),
        ("agents", 8),
        ("projects", 6),
        ("api-keys", 4),
        ("models", 6),
    ):
        parser.add_argument(f"--{name}", type=int, default=default, help="per workspace")
    parser.add_argument("--topic", default=None, help="default: USAGE_TOPIC_EVENTS")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--dry-run", action="store_true", help="generate and summarise only")
    target.add_argument("--out", metavar="FILE", help="write NDJSON ('-': stdout), no Kafka")
    parser.add_argument("--batch", type=int, default=_BATCH, help="sends awaited together")
    parser.set_defaults(func=_main)


def _aware_datetime(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.utcoffset() is None:
        raise argparse.ArgumentTypeError("--end needs an offset, e.g. 2026-03-01T00:00:00Z")
    return moment


def config_from_args(args: argparse.Namespace, *, clock: Clock = system_clock) -> SimConfig:
    """The simulation ``args`` ask for; the span ends at ``--end``, else now."""
    return SimConfig(
        seed=args.seed,
        orgs=args.orgs,
        events=args.events,
        end=args.end or clock(),
        days=args.days,
        users=args.users,
        agents=args.agents,
        projects=args.projects,
        api_keys=args.api_keys,
        models=args.models,
        dup_rate=args.dup_rate,
        late_rate=args.late_rate,
        invalid_rate=args.invalid_rate,
    )


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} events/s", style="cyan")


class Summary:
    """Counts of what was generated, by kind and type (and reason for invalid ones)."""

    def __init__(self) -> None:
        self.by_kind_type: Counter[tuple[str, str]] = Counter()
        self.reasons: Counter[str] = Counter()
        self.rejected_too_large = 0
        self.bytes = 0

    def add(self, record: SimRecord) -> None:
        self.by_kind_type[record.kind, record.event_type] += 1
        if record.reason is not None:
            self.reasons[record.reason] += 1
        self.bytes += len(record.value)

    @property
    def total(self) -> int:
        return sum(self.by_kind_type.values())

    def table(self) -> Table:
        table = Table(title=f"{self.total:,} records, {self.bytes / 1e6:,.1f} MB")
        for column in ("type", "valid", "duplicate", "invalid"):
            table.add_column(column, justify="left" if column == "type" else "right")
        for event_type in sorted({event_type for _, event_type in self.by_kind_type}):
            table.add_row(
                event_type,
                *(
                    f"{self.by_kind_type[kind, event_type]:,}"
                    for kind in ("valid", "duplicate", "invalid")
                ),
            )
        for reason, count in sorted(self.reasons.items()):
            table.add_row(f"[dim]invalid: {reason}[/dim]", "", "", f"{count:,}")
        return table


def _tracked(
    records: Iterable[SimRecord], summary: Summary, progress: Progress, expected: int
) -> Iterator[SimRecord]:
    task = progress.add_task("simulating", total=expected)
    step = 0
    for record in records:
        summary.add(record)
        step += 1
        if step == 1000:
            progress.advance(task, step)
            step = 0
        yield record
    progress.advance(task, step)
    progress.update(task, total=summary.total, completed=summary.total)


def write_ndjson(records: Iterable[SimRecord], out: IO[bytes]) -> None:
    """One JSON object a line: key, kind, reason and the value as text (base64 if not UTF-8)."""
    for record in records:
        line: dict[str, Any] = {
            "key": record.key.decode(),
            "kind": record.kind,
            "reason": record.reason,
        }
        try:
            line["value"] = record.value.decode("utf-8")
        except UnicodeDecodeError:
            line["value_b64"] = base64.b64encode(record.value).decode()
        out.write(codec.dumps(line) + b"\n")


async def produce(
    records: Iterable[SimRecord],
    make_producer: Callable[[], Any],
    topic: str,
    batch: int,
    summary: Summary,
) -> None:
    """Send every record; await acknowledgements ``batch`` at a time.

    ``make_producer`` is called inside the running loop (aiokafka requires it).
    """
    producer = make_producer()
    await producer.start()
    try:
        pending: list[tuple[asyncio.Future[Any], SimRecord]] = []
        for record in records:
            future = await producer.send(topic, value=record.value, key=record.key)
            pending.append((future, record))
            if len(pending) >= batch:
                await _settle(pending, summary)
                pending = []
        await _settle(pending, summary)
    finally:
        await producer.stop()


async def _settle(pending: list[tuple[asyncio.Future[Any], SimRecord]], summary: Summary) -> None:
    results = await asyncio.gather(*(future for future, _ in pending), return_exceptions=True)
    for result, (_, record) in zip(results, pending, strict=True):
        if not isinstance(result, BaseException):
            continue
        if record.reason == "too_large":  # the broker refusing > 1 MiB is the point
            summary.rejected_too_large += 1
            continue
        raise result


def _main(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    config = config_from_args(args).resolved()
    expected = int(config.events * (1 + config.dup_rate + config.invalid_rate))
    summary = Summary()
    started = time.perf_counter()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress, ExitStack() as stack:
        records = _tracked(simulate(config), summary, progress, expected)
        if args.dry_run:
            for _ in records:
                pass
        elif args.out:
            out = (
                sys.stdout.buffer if args.out == "-" else stack.enter_context(open(args.out, "wb"))
            )
            write_ndjson(records, out)
        else:
            from shared.adapters.kafka import make_producer
            from shared.settings import load_settings

            settings = load_settings()
            topic = args.topic or settings.topic_events
            asyncio.run(
                produce(records, lambda: make_producer(settings), topic, args.batch, summary)
            )
    console.print(summary.table())
    if summary.rejected_too_large:
        console.print(
            f"{summary.rejected_too_large} oversized invalid records refused by the broker"
        )
    elapsed = time.perf_counter() - started
    console.print(
        f"{summary.total:,} records in {elapsed:.1f} s "
        f"({summary.total / max(elapsed, 1e-9):,.0f} records/s)"
    )
    # The resolved end makes the run reproducible: same seed and --end, same bytes.
    end = config.end.isoformat() if config.end else ""
    console.print(f"seed {config.seed}, {config.orgs} workspaces, --days {config.days} --end {end}")
    return 0
