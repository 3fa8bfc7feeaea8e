"""``usage-export dlq show|replay``: inspect dead letters and send them back to their topics.

Tables go to stdout (``--json`` for scripts), progress to stderr. Exit status: 0 when
everything asked for was done, 1 when some chosen letters were refused or nothing
matched, 2 when the topic does not exist, 3 when the broker could not be read or written.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from aiokafka.errors import KafkaError
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from services.ops.dead_letters import (
    DeadLetterSummary,
    OffsetRef,
    ReplayReport,
    Selection,
)
from services.ops.dlq_actions import (
    DLQ_TOPIC_SETTINGS,
    ReplayInterrupted,
    dlq_topic,
    replay_dead_letters,
    summarize_dead_letters,
)
from services.ops.topic_reader import TopicNotFound
from shared import codec
from shared.errors import UsageExportError
from shared.settings import Settings, load_settings

_REPLAY_SAFETY = (
    "Replaying is harmless for correctness: ingest deduplicates events by org_id + "
    "event_id, and the exporter answers a request_id it has already seen from its record, "
    "so a letter replayed twice (or one that was in fact processed) counts once. Letters "
    "that still break a rule go back to the dead-letter topic."
)


def register(subparsers: Any) -> None:
    # One add_argument per option, spelled out: the shapes repeat across commands by design.
    parser = subparsers.add_parser(
        "dlq",
        help="show dead letters grouped by reason, or replay them to their source topic",
        description="Dead letters of usage.events (--topic events) or usage.export-requests "
        "(--topic requests). Reads the whole topic without a consumer group: no "
        "service's offsets move. " + _REPLAY_SAFETY,
    )
    actions = parser.add_subparsers(dest="dlq_action", metavar="ACTION", required=True)

    show = actions.add_parser(
        "show",
        help="count dead letters per reason and list the first ones",
        description="Counts per error.reason over the whole topic, then the first --limit "
        "letters with offset, key, reason, error and a preview of the value.",
    )
    _common(show)
    show.add_argument("--limit", type=_non_negative, default=20, help="letters listed (20)")
    show.add_argument("--json", action="store_true", help="one JSON object on stdout")
    show.set_defaults(func=_show)

    replay = actions.add_parser(
        "replay",
        help="send chosen dead letters back to their source topic",
        description="Re-produce the chosen letters to the topic named by their source.topic "
        "header, with their original key and value, without the dead-letter headers and "
        "with a replayed.from header (dlq-topic:partition:offset). A letter is chosen when "
        "it matches any --reason or any --offset, or with --all. Truncated letters (header "
        "value.truncated) are refused: their full value is not in the DLQ. " + _REPLAY_SAFETY,
    )
    _common(replay)
    replay.add_argument(
        "--reason", action="append", default=[], metavar="R", help="error.reason to replay"
    )
    replay.add_argument(
        "--offset",
        action="append",
        default=[],
        type=_offset_ref,
        metavar="N",
        help="offset to replay, N or PARTITION:N (repeatable)",
    )
    replay.add_argument("--all", action="store_true", help="every letter of the topic")
    replay.add_argument("--dry-run", action="store_true", help="show what would be sent")
    replay.add_argument("--json", action="store_true", help="summary as JSON on stdout")
    replay.set_defaults(func=_replay)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--topic",
        choices=sorted(DLQ_TOPIC_SETTINGS),
        default="events",
        help="which dead-letter topic (names from USAGE_TOPIC_*_DLQ; default events)",
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to reach the topic's end (60)"
    )


# Like up's _positive, with another bound and message: argparse types stay per command.
def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def _offset_ref(text: str) -> OffsetRef:
    try:
        return OffsetRef.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# ---- show ---------------------------------------------------------------------------------
def _show(args: argparse.Namespace) -> int:
    settings = load_settings()
    topic = dlq_topic(settings, args.topic)
    return _guarded(settings, topic, lambda: _show_async(settings, topic, args))


async def _show_async(settings: Settings, topic: str, args: argparse.Namespace) -> int:
    summary = await summarize_dead_letters(
        settings, topic, limit=args.limit, timeout_s=args.timeout
    )
    if args.json:
        sys.stdout.write(codec.dumps(summary.to_json()).decode() + "\n")
    else:
        render_summary(summary, Console())
    return 0


def render_summary(summary: DeadLetterSummary, console: Console) -> None:
    """The reasons table, then the first letters, as ``dlq show`` prints them."""
    if summary.total == 0:
        console.print(f"[green]{summary.topic}: no dead letters[/green]")
        return
    reasons = Table(title=f"{summary.topic}: {summary.total:,} dead letters by reason")
    reasons.add_column("reason")
    reasons.add_column("count", justify="right")
    reasons.add_column("first", justify="right")
    reasons.add_column("last", justify="right")
    for reason, stats in summary.by_count():
        reasons.add_row(escape(reason), f"{stats.count:,}", _short(stats.first), _short(stats.last))
    console.print(reasons)
    if not summary.letters:
        return
    letters = Table(title=f"first {len(summary.letters)} of {summary.total:,}")
    for column in ("partition:offset", "key", "reason", "error", "value"):
        letters.add_column(column, overflow="fold")
    for letter in summary.letters:
        value = escape(letter.value_preview())
        if letter.truncated_size is not None:
            value = f"[yellow](truncated from {letter.truncated_size:,} bytes)[/yellow] {value}"
        letters.add_row(
            f"{letter.partition}:{letter.offset}",
            escape(letter.key_text()),
            escape(letter.reason),
            escape(letter.error),
            value,
        )
    console.print(letters)


def _short(position: str) -> str:
    """``partition:offset`` of a ``topic:partition:offset`` position."""
    return ":".join(position.rsplit(":", 2)[-2:])


# ---- replay -------------------------------------------------------------------------------
def _replay(args: argparse.Namespace) -> int:
    selection = Selection(
        reasons=frozenset(args.reason), offsets=frozenset(args.offset), everything=args.all
    )
    if selection.is_empty:
        print(
            "usage-export dlq replay: choose letters with --reason, --offset or --all",
            file=sys.stderr,
        )
        return 2
    settings = load_settings()
    topic = dlq_topic(settings, args.topic)
    return _guarded(settings, topic, lambda: _replay_async(settings, topic, selection, args))


async def _replay_async(
    settings: Settings, topic: str, selection: Selection, args: argparse.Namespace
) -> int:
    err = Console(stderr=True)
    verb = "checking" if args.dry_run else "replaying"
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err
    ) as progress:
        task = progress.add_task(f"{verb} {topic}")

        def update(report: ReplayReport) -> None:
            progress.update(
                task,
                description=f"{verb} {topic}: {report.scanned:,} scanned, "
                f"{report.replayed_total:,} {'chosen' if args.dry_run else 'replayed'}, "
                f"{len(report.refused):,} refused",
            )

        try:
            report = await replay_dead_letters(
                settings,
                topic,
                selection,
                dry_run=args.dry_run,
                timeout_s=args.timeout,
                progress=update,
            )
        except ReplayInterrupted as exc:
            render_replay(exc.report, Console(stderr=True))
            err.print(
                f"[red]{exc}[/red]\nRunning the same replay again is harmless: duplicates "
                "are dropped by event_id / request_id."
            )
            return 3
    if args.json:
        sys.stdout.write(codec.dumps(report.to_json()).decode() + "\n")
    else:
        render_replay(report, Console())
    if report.replayed_total == 0 and not report.refused:
        present = ", ".join(sorted(report.seen)) or "none"
        err.print(f"[yellow]no dead letter matched; reasons present: {present}[/yellow]")
        return 1
    return 1 if report.refused else 0


def render_replay(report: ReplayReport, console: Console) -> None:
    """Per-reason counts of what was (or would be) sent, then every refusal."""
    sent = "would be replayed" if report.dry_run else "replayed"
    if report.replayed:
        table = Table(title=f"{report.replayed_total:,} dead letters {sent} from {report.topic}")
        table.add_column("reason")
        table.add_column(sent, justify="right")
        for reason, count in sorted(report.replayed.items()):
            table.add_row(escape(reason), f"{count:,}")
        console.print(table)
        targets = ", ".join(f"{topic} ({count:,})" for topic, count in report.targets.items())
        console.print(f"to: {targets}")
    if report.refused:
        refused = Table(title=f"{len(report.refused):,} refused", title_style="red")
        for column in ("partition:offset", "reason", "why"):
            refused.add_column(column, overflow="fold")
        for refusal in report.refused:
            letter = refusal.letter
            refused.add_row(
                f"{letter.partition}:{letter.offset}", escape(letter.reason), escape(refusal.why)
            )
        console.print(refused)
    console.print(
        f"{report.scanned:,} letters scanned"
        + (" (dry run: nothing sent)" if report.dry_run else "")
    )


# ---- errors -------------------------------------------------------------------------------
def _guarded(settings: Settings, topic: str, work: Any) -> int:
    """Run ``work()`` and turn the expected failures into a message and an exit status."""
    try:
        status: int = asyncio.run(work())
    except TopicNotFound as exc:
        print(f"usage-export dlq: {exc}", file=sys.stderr)
        return 2
    except (KafkaError, OSError, UsageExportError) as exc:
        print(
            f"usage-export dlq: {topic} on {settings.kafka_bootstrap}: {exc!r}",
            file=sys.stderr,
        )
        return 3
    return status
