"""The ingest worker: usage events from Kafka into day aggregates in the object store.

Loop: fetch a batch → validate → group facts by (workspace, UTC day) → load the states
the batch touches → fold → every ``ingest_flush_interval_s`` (or earlier when the working
set is full) make every dirty state durable, wait for dead letters to be acknowledged,
and only then commit the offsets. A crash anywhere replays at most the uncommitted tail,
and replayed events are dropped by the per-day dedup set, so each event counts once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, cast

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from services.ingest.state_cache import StateCache
from services.ingest.validation import AcceptedRange, Rejected, read_record
from shared.adapters.dead_letters import dead_letter_headers, send_dead_letter
from shared.adapters.s3 import ObjectStore
from shared.clock import Clock, system_clock
from shared.domain.dimensions import DimensionEvent, dimension_update, occurred_ms
from shared.domain.facts import TS, Fact
from shared.domain.window import utc_day_of
from shared.errors import RetriableError
from shared.observability import IngestMetrics
from shared.settings import Settings
from shared.storage.dims import DimensionUpdate

log = logging.getLogger(__name__)

_DAY_MS = 86_400_000


@dataclass
class IngestStats:
    consumed: int = 0
    applied: int = 0
    duplicates: int = 0
    dead_lettered: Counter[str] = field(default_factory=Counter)
    flushes: int = 0
    committed: dict[TopicPartition, int] = field(default_factory=dict)


@dataclass
class _DeadLetter:
    """A dead letter until the broker acknowledged it (kept to send it again)."""

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    future: asyncio.Future[Any] | None = None


def flush_due(
    settings: Settings, *, elapsed_s: float, backlog: bool, pending_facts: int, over_bounds: bool
) -> bool:
    """Every ``ingest_flush_interval_s`` when caught up (freshness: an export sees events
    seconds after they are produced); every ``ingest_backlog_flush_interval_s`` while the
    fetches come back full; at once when the working set or the pending facts are full."""
    if over_bounds or pending_facts >= settings.ingest_max_pending_facts:
        return True
    interval = (
        settings.ingest_backlog_flush_interval_s if backlog else settings.ingest_flush_interval_s
    )
    return elapsed_s >= interval


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: IngestWorker) -> None:
        self._worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._worker.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("assigned %s", sorted((tp.topic, tp.partition) for tp in assigned))


class IngestWorker:
    """One ingest process. ``await run()`` until ``stop`` is set (SIGTERM), then drain."""

    def __init__(
        self,
        settings: Settings,
        *,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        store: ObjectStore,
        metrics: IngestMetrics | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self._settings = settings
        self._consumer = consumer
        self._producer = producer
        self._store = store
        self._clock = clock
        self.cache = StateCache(
            store,
            max_entries=settings.ingest_cache_max_entries,
            max_weight=settings.ingest_cache_max_facts,
            max_bytes=settings.ingest_cache_max_mb * 1024 * 1024,
            concurrency=settings.ingest_flush_concurrency,
        )
        self.stats = IngestStats()
        self._metrics = metrics
        self._positions: dict[TopicPartition, int] = {}
        self._dead_letters: list[_DeadLetter] = []
        self._flush_lock = asyncio.Lock()
        self._last_flush = time.monotonic()

    @property
    def listener(self) -> ConsumerRebalanceListener:
        return _Rebalance(self)

    # ---- main loop ----------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        settings = self._settings
        while not stop.is_set():
            batch = await self._consumer.getmany(
                timeout_ms=int(min(settings.ingest_flush_interval_s, 0.5) * 1000),
                max_records=settings.ingest_batch_max_records,
            )
            fetched = sum(len(records) for records in batch.values())
            if batch:
                await self.process(batch)
            if flush_due(
                settings,
                elapsed_s=time.monotonic() - self._last_flush,
                backlog=fetched >= settings.ingest_batch_max_records,
                pending_facts=self.cache.pending_facts,
                over_bounds=self.cache.needs_early_flush(),
            ):
                await self.flush_and_commit(stop)
        await self.flush_and_commit(stop, final=True)

    async def process(self, batch: dict[TopicPartition, list[Any]]) -> None:
        accepted = AcceptedRange.at(
            self._clock(), future_tolerance=timedelta(seconds=self._settings.future_tolerance_s)
        )
        facts: defaultdict[tuple[str, date], list[Fact]] = defaultdict(list)
        updates: defaultdict[tuple[str, str], list[DimensionUpdate]] = defaultdict(list)
        positions: dict[TopicPartition, int] = {}
        max_bytes = self._settings.max_event_bytes
        days: dict[int, date] = {}  # UTC day number -> date, for this batch
        for tp, records in batch.items():
            self.stats.consumed += len(records)
            for record in records:
                result = read_record(record.value, accepted, max_bytes=max_bytes)
                if type(result) is tuple:
                    org_id, fact = result
                    number = fact[TS] // _DAY_MS
                    day = days.get(number)
                    if day is None:
                        day = days[number] = utc_day_of(fact[TS])
                    facts[(org_id, day)].append(fact)
                elif isinstance(result, Rejected):
                    await self._dead_letter(tp, record, result)
                else:
                    dimension = cast(DimensionEvent, result)
                    kind, entity, attributes = dimension_update(dimension)
                    updates[(dimension.org_id, kind)].append(
                        (entity, occurred_ms(dimension), dimension.event_id, attributes)
                    )
            positions[tp] = records[-1].offset + 1
        # Load, apply and advance the positions under the flush lock: the revoke callback
        # (flush, commit, forget clean states) runs on the coordinator's task and would
        # otherwise forget the states this batch has just loaded, mid-batch.
        async with self._flush_lock:
            await self._load(facts, updates)
            offered = applied = 0  # apply() is True for what was new, False for a duplicate
            for key, day_facts in facts.items():
                applied += sum(map(self.cache.day(key).apply, day_facts))
                offered += len(day_facts)
            for dims_key, dims_updates in updates.items():
                applied += sum(map(self.cache.dims_state(dims_key).apply, dims_updates))
                offered += len(dims_updates)
            self.stats.applied += applied
            self.stats.duplicates += offered - applied
            # Only now may a commit cover these records: a rebalance callback can run while
            # the states load, and committing records not yet applied could lose them.
            self._positions.update(positions)
        if self._metrics is not None:
            self._metrics.events_consumed.inc(sum(len(records) for records in batch.values()))
            self._metrics.events_applied.inc(applied)
            self._metrics.events_duplicated.inc(offered - applied)
            self._report_lag(batch)

    async def _load(
        self, facts: Iterable[tuple[str, date]], updates: Iterable[tuple[str, str]]
    ) -> None:
        """Load the states a batch touches; while the store is down, wait and retry (the
        batch is held, nothing is committed, fetching pauses)."""
        delay = self._settings.s3_retry_base_s
        while True:
            try:
                await self.cache.ensure_days(facts)
                await self.cache.ensure_dims(updates)
                return
            except RetriableError as exc:
                log.warning("cannot load state (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._settings.s3_retry_max_s)

    def _report_lag(self, batch: dict[TopicPartition, list[Any]]) -> None:
        assert self._metrics is not None
        for tp in batch:
            highwater = self._consumer.highwater(tp)
            if highwater is not None:
                self._metrics.set_lag(tp.topic, tp.partition, highwater - self._positions[tp])

    async def _dead_letter(self, tp: TopicPartition, record: Any, rejected: Rejected) -> None:
        self.stats.dead_lettered[rejected.reason] += 1
        if self._metrics is not None:
            self._metrics.dead_lettered(rejected.reason)
        size = len(record.value) if record.value is not None else 0
        headers = dead_letter_headers(
            reason=rejected.reason,
            error=rejected.header,
            topic=tp.topic,
            partition=tp.partition,
            offset=record.offset,
            original_size=size,
        )
        letter = _DeadLetter(key=record.key, value=record.value, headers=headers)
        letter.future = await self._send_dead_letter(letter)
        self._dead_letters.append(letter)

    async def _send_dead_letter(self, letter: _DeadLetter) -> asyncio.Future[Any]:
        return await send_dead_letter(
            self._producer,
            self._settings.topic_events_dlq,
            key=letter.key,
            value=letter.value,
            headers=letter.headers,
        )

    async def _dead_letters_acknowledged(self) -> None:
        """Wait until the broker has every dead letter; send again what it refused."""
        for letter in self._dead_letters:
            while True:
                assert letter.future is not None
                try:
                    await letter.future
                    break
                except KafkaError:
                    # A failed send does not retry by itself: queue it again, then let the
                    # caller's backoff decide when to look again.
                    letter.future = await self._send_dead_letter(letter)
                    raise
        self._dead_letters = []

    # ---- durability, then commit ------------------------------------------------------------
    async def flush_and_commit(
        self, stop: asyncio.Event | None = None, *, final: bool = False
    ) -> None:
        async with self._flush_lock:
            await self._make_durable(stop, final=final)
            await self._commit()
            self.cache.evict()
            self._last_flush = time.monotonic()
            if self._metrics is not None:
                self._metrics.set_cache(
                    entries=len(self.cache.days) + len(self.cache.dims), facts=self.cache.weight
                )

    async def _make_durable(self, stop: asyncio.Event | None, *, final: bool) -> None:
        delay = self._settings.s3_retry_base_s
        while True:
            try:
                await self._dead_letters_acknowledged()
                if self.cache.dirty:
                    report = await self.cache.flush()
                    self.stats.flushes += 1
                    if self._metrics is not None:
                        self._metrics.observe_flush(
                            report.seconds,
                            facts=report.facts,
                            states=report.days + report.dims,
                            conflicts=report.conflicts,
                        )
                    log.debug(
                        "flushed %s days, %s dims, %s facts in %.3fs (%s conflicts)",
                        report.days,
                        report.dims,
                        report.facts,
                        report.seconds,
                        report.conflicts,
                    )
                return
            except (RetriableError, KafkaError) as exc:
                # The store or broker is down: hold everything (nothing is committed) and
                # keep trying; fetching waits meanwhile, so memory stays bounded.
                log.warning("cannot make state durable yet (%s); retrying in %.1fs", exc, delay)
                if (
                    final
                    and stop is not None
                    and stop.is_set()
                    and delay >= self._settings.s3_retry_max_s
                ):
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._settings.s3_retry_max_s)

    async def _commit(self) -> None:
        assigned = self._consumer.assignment()
        offsets = {
            tp: offset
            for tp, offset in self._positions.items()
            if tp in assigned and self.stats.committed.get(tp) != offset
        }
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # A rebalance took the partitions: what we applied is durable, the next owner
            # re-reads from the last commit and its duplicates are dropped by dedup.
            log.warning("offset commit failed (%s); the next owner will dedup", exc)
            if self._metrics is not None:
                self._metrics.commit_failures.inc()
            return
        self.stats.committed.update(offsets)

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        log.info("revoking %s", sorted((tp.topic, tp.partition) for tp in revoked))
        await self.flush_and_commit()
        for tp in revoked:
            self._positions.pop(tp, None)
            self.stats.committed.pop(tp, None)
            if self._metrics is not None:
                self._metrics.forget_partition(tp.topic, tp.partition)
        self.cache.clear_clean()
