"""``dlq show`` and ``dlq replay`` against the broker (the rules are in ``dead_letters``).

Both read the whole dead-letter topic without a consumer group, so they never move the
offsets of a service and can run at any time, as often as wanted. Replay produces with
the services' own producer settings (acks from all replicas) and counts a letter as
replayed only once the broker acknowledged it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.ops.dead_letters import (
    DeadLetter,
    DeadLetterSummary,
    Refusal,
    ReplayRecord,
    ReplayReport,
    Selection,
    plan_replay,
)
from services.ops.topic_reader import TopicReader
from shared.adapters.kafka import make_producer
from shared.errors import UsageExportError
from shared.settings import Settings

#: ``--topic`` choices: which dead-letter topic of :class:`Settings`.
DLQ_TOPIC_SETTINGS: dict[str, str] = {
    "events": "topic_events_dlq",
    "requests": "topic_export_requests_dlq",
}

ProgressCallback = Callable[[ReplayReport], None]


class ReplayInterrupted(UsageExportError):
    """Producing failed part-way; ``report`` tells what was acknowledged before."""

    def __init__(self, report: ReplayReport, cause: BaseException) -> None:
        super().__init__(f"replay stopped after {report.replayed_total} letter(s): {cause!r}")
        self.report = report


def dlq_topic(settings: Settings, which: str) -> str:
    """The dead-letter topic name for ``events`` or ``requests``."""
    try:
        return str(getattr(settings, DLQ_TOPIC_SETTINGS[which]))
    except KeyError:
        raise ValueError(f"unknown dead-letter topic {which!r}: use events or requests") from None


async def summarize_dead_letters(
    settings: Settings, topic: str, *, limit: int = 20, timeout_s: float = 60.0
) -> DeadLetterSummary:
    """Counts per reason over the whole topic, plus its first ``limit`` letters."""
    summary = DeadLetterSummary(topic=topic, limit=limit)
    async with TopicReader(settings, topic, timeout_s=timeout_s) as reader:
        async for batch in reader.batches():
            for record in batch:
                summary.add(DeadLetter.from_record(record))
    return summary


async def replay_dead_letters(
    settings: Settings,
    topic: str,
    selection: Selection,
    *,
    dry_run: bool = False,
    timeout_s: float = 60.0,
    progress: ProgressCallback | None = None,
) -> ReplayReport:
    """Re-produce the chosen letters to their source topics; truncated ones are refused."""
    if selection.is_empty:
        raise ValueError("choose letters to replay: --reason, --offset or --all")
    report = ReplayReport(topic=topic, dry_run=dry_run)
    producer = None if dry_run else make_producer(settings)
    try:
        if producer is not None:
            await producer.start()
        async with TopicReader(settings, topic, timeout_s=timeout_s) as reader:
            async for batch in reader.batches():
                chosen: list[ReplayRecord] = []
                for record in batch:
                    report.scanned += 1
                    letter = DeadLetter.from_record(record)
                    report.seen[letter.reason] += 1
                    if not selection.matches(letter):
                        continue
                    planned = plan_replay(letter)
                    if isinstance(planned, Refusal):
                        report.refused.append(planned)
                    else:
                        chosen.append(planned)
                await _send(producer, chosen, report)
                if progress is not None:
                    progress(report)
    except Exception as exc:
        # aiokafka's errors share no root with ours: whatever stopped it, say how far it got.
        if report.replayed_total and not dry_run:
            raise ReplayInterrupted(report, exc) from exc
        raise
    finally:
        if producer is not None:
            await producer.stop()
    return report


async def _send(producer: Any, chosen: list[ReplayRecord], report: ReplayReport) -> None:
    """Send a batch and count each record once the broker acknowledged it."""
    if producer is None:
        for item in chosen:
            report.replayed[item.letter.reason] += 1
            report.targets[item.topic] += 1
        return
    futures = [
        await producer.send(item.topic, key=item.key, value=item.value, headers=list(item.headers))
        for item in chosen
    ]
    for item, future in zip(chosen, futures, strict=True):
        await future
        report.replayed[item.letter.reason] += 1
        report.targets[item.topic] += 1
