"""What an operator asks first, gathered in one pass: ``usage-export status``.

Can the broker and the store be reached; how far behind are ingest and the exporter
(lag per partition: the log end minus the group's committed offset, and the time of
the oldest record not yet committed); how many dead letters of each reason sit in each
dead-letter topic; which is the newest UTC day written for each workspace.

Nothing here moves an offset: lag is read with a group-less consumer (log ends, the
oldest unconsumed record) and the groups' committed offsets are fetched without
joining them; dead-letter topics are read whole without a group (as ``dlq show``).
The log end is the larger of ListOffsets(latest) and the fetched high watermark
(``kafka_offsets.end_offsets``), because the embedded broker answers the former short.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from services.ops.dlq_actions import summarize_dead_letters
from services.ops.topic_reader import TopicNotFound
from shared.adapters.kafka import make_consumer
from shared.adapters.kafka_offsets import end_offsets, timestamp_at
from shared.adapters.s3 import S3ObjectStore
from shared.columnar.tables import ROOT, TableStore, newest_fact_day, workspace_ids
from shared.errors import UsageExportError
from shared.observability.checks import tcp_reachable
from shared.settings import Settings

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Reachability:
    what: str  # "broker", "store"
    address: str
    setting: str  # the USAGE_ variable the address came from
    error: str | None = None

    @property
    def reachable(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class PartitionLag:
    partition: int
    committed: int | None  # None: the group has committed nothing on it
    end: int
    oldest_unconsumed: datetime | None  # the record at the committed offset, if any

    @property
    def lag(self) -> int:
        return self.end - (self.committed or 0)


@dataclass(frozen=True, slots=True)
class GroupLag:
    group: str
    topic: str
    partitions: list[PartitionLag]

    @property
    def lag(self) -> int:
        return sum(partition.lag for partition in self.partitions)

    @property
    def oldest_unconsumed(self) -> datetime | None:
        times = [p.oldest_unconsumed for p in self.partitions if p.oldest_unconsumed]
        return min(times) if times else None


@dataclass(frozen=True, slots=True)
class WorkspaceDay:
    org_id: str
    newest_day: date | None


@dataclass
class Status:
    reachability: list[Reachability]
    groups: list[GroupLag] = field(default_factory=list)
    #: dead-letter topic -> reason -> count (an absent topic has no entry)
    dead_letters: dict[str, dict[str, int]] = field(default_factory=dict)
    workspaces: list[WorkspaceDay] = field(default_factory=list)
    workspaces_total: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return all(item.reachable for item in self.reachability) and not self.problems

    def to_json(self) -> dict[str, Any]:
        def group(item: GroupLag) -> dict[str, Any]:
            return {
                "group": item.group,
                "topic": item.topic,
                "lag": item.lag,
                "oldest_unconsumed": _iso(item.oldest_unconsumed),
                "partitions": [
                    {
                        "partition": p.partition,
                        "committed": p.committed,
                        "end": p.end,
                        "lag": p.lag,
                        "oldest_unconsumed": _iso(p.oldest_unconsumed),
                    }
                    for p in item.partitions
                ],
            }

        return {
            "healthy": self.healthy,
            "reachability": [
                asdict(item) | {"reachable": item.reachable} for item in self.reachability
            ],
            "groups": [group(item) for item in self.groups],
            "dead_letters": self.dead_letters,
            "workspaces_total": self.workspaces_total,
            "workspaces": [
                {
                    "org_id": w.org_id,
                    "newest_day": w.newest_day.isoformat() if w.newest_day else None,
                }
                for w in self.workspaces
            ],
            "problems": self.problems,
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="milliseconds") if moment else None


async def gather_status(
    settings: Settings, *, max_workspaces: int = 20, timeout_s: float = 30.0
) -> Status:
    """Everything ``status`` shows. An unreachable broker or store is reported, not
    raised; the parts that need it are then left out."""
    broker = await _reach("broker", settings.kafka_bootstrap, "USAGE_KAFKA_BOOTSTRAP",
                          tcp_reachable(settings.kafka_bootstrap))  # fmt: skip
    store_check = S3ObjectStore(settings, settings.aggregates_bucket, max_attempts=1)
    store = await _reach("store", settings.s3_endpoint, "USAGE_S3_ENDPOINT",
                         _store_reachable(store_check))  # fmt: skip
    status = Status(reachability=[broker, store])
    if broker.reachable:
        for group, topic in (
            (settings.ingest_group, settings.topic_events),
            (settings.exporter_group, settings.topic_export_requests),
            (settings.delivery_group, settings.topic_export_completions),
        ):
            found = await _part(
                status, f"lag of {group}", _group_lag(settings, group, topic, timeout_s)
            )
            if found is not None:
                status.groups.append(found)
        for topic in (settings.topic_events_dlq, settings.topic_export_requests_dlq):
            counts = await _part(
                status, f"dead letters of {topic}", _dead_letters(settings, topic, timeout_s)
            )
            if counts is not None:
                status.dead_letters[topic] = counts
    if store.reachable:
        found_days = await _part(status, "workspaces", _workspace_days(settings, max_workspaces))
        if found_days is not None:
            status.workspaces_total, status.workspaces = found_days
    return status


async def _reach(what: str, address: str, setting: str, check: Awaitable[None]) -> Reachability:
    try:
        await asyncio.wait_for(check, 10.0)
    except (OSError, TimeoutError, UsageExportError, ValueError) as exc:
        return Reachability(what, address, setting, str(exc) or type(exc).__name__)
    return Reachability(what, address, setting)


async def _store_reachable(store: S3ObjectStore) -> None:
    async with store:
        await store.list_prefixes(ROOT)


async def _part(status: Status, what: str, work: Awaitable[T]) -> T | None:
    """One part of the status; a failure becomes a problem line, not an exception."""
    try:
        return await work
    except (KafkaError, OSError, TimeoutError, UsageExportError) as exc:
        status.problems.append(f"{what}: {exc or type(exc).__name__}")
        return None


async def _group_lag(settings: Settings, group: str, topic: str, timeout_s: float) -> GroupLag:
    reader = make_consumer(settings, group_id=None)
    offsets = make_consumer(settings, group_id=group)  # fetches commits; never joins
    await reader.start()
    try:
        await offsets.start()
        try:
            partitions = await _partitions(reader, topic, timeout_s)
            reader.assign(partitions)
            ends = await end_offsets(reader, partitions, timeout_s=timeout_s)
            lags = []
            for tp in partitions:
                committed = await offsets.committed(tp)
                oldest = None
                if ends[tp] > (committed or 0):
                    appended = await timestamp_at(reader, tp, committed or 0, timeout_s)
                    if appended is not None:
                        oldest = datetime.fromtimestamp(appended / 1000, UTC)
                lags.append(PartitionLag(tp.partition, committed, ends[tp], oldest))
        finally:
            await offsets.stop()
    finally:
        await reader.stop()
    return GroupLag(group, topic, lags)


async def _partitions(
    consumer: AIOKafkaConsumer, topic: str, timeout_s: float
) -> list[TopicPartition]:
    async with asyncio.timeout(timeout_s):
        await consumer.topics()
    found = consumer.partitions_for_topic(topic)
    if not found:
        raise TopicNotFound(f"topic {topic!r} does not exist")
    return [TopicPartition(topic, partition) for partition in sorted(found)]


async def _dead_letters(settings: Settings, topic: str, timeout_s: float) -> dict[str, int]:
    try:
        summary = await summarize_dead_letters(settings, topic, limit=0, timeout_s=timeout_s)
    except TopicNotFound:
        return {}
    return {reason: stats.count for reason, stats in summary.by_count()}


async def _workspace_days(
    settings: Settings, max_workspaces: int
) -> tuple[int, list[WorkspaceDay]]:
    async with S3ObjectStore(settings, settings.aggregates_bucket) as store:
        orgs = await workspace_ids(store)
    tables = TableStore.of(settings)
    days = [WorkspaceDay(org, await newest_fact_day(tables, org)) for org in orgs[:max_workspaces]]
    days.sort(key=lambda item: (item.newest_day or date.min, item.org_id), reverse=True)
    return len(orgs), days
