"""The ingest worker: usage events from Kafka into each workspace's format-3 tables.

Loop: fetch a batch → decode it into columns (``services.ingest.decode``) → split the
rows by workspace → each workspace's writer drops what its tables already hold (by Kafka
position, by ``event_id``) and keeps the rest pending → every ``ingest_flush_interval_s``
(or earlier when the pending rows or the writers' memory are over their bounds) commit
every workspace's pending rows (one Delta commit per table, carrying the positions), wait
for dead letters to be acknowledged, and only then commit the Kafka offsets. A crash
anywhere replays at most the uncommitted tail, and what it replays is dropped by
position or by id, so each event counts once (``services.ingest.workspace_writer``).

A flush runs as a task while the loop fetches and decodes the next batches (the commits
wait on the store on other threads, the decoding is CPU on this one); decoded batches
are applied to the writers only once that flush is over, so a flush never sees a writer
change under it, and at most a few batches wait (``_WAITING_BATCHES``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Collection, Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, Final, TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from services.ingest.checkpoint import Checkpoint
from services.ingest.decode import decode_batch
from services.ingest.validation import AcceptedRange, Rejected
from services.ingest.writers import Writers
from shared.adapters.dead_letters import headers_for_record, send_dead_letter
from shared.adapters.rebalance import RevokeListener
from shared.clock import Clock, system_clock
from shared.columnar.schema import DimensionVersion
from shared.columnar.tables import STORE_ERRORS, TableStore
from shared.columnar.tables import TopicPartition as Source
from shared.observability import IngestMetrics
from shared.retry import Failure, broker_backoff, retry, store_backoff
from shared.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")
Offsets = npt.NDArray[np.int64]


@dataclass
class IngestStats:
    consumed: int = 0
    applied: int = 0
    duplicates: int = 0
    dead_lettered: Counter[str] = field(default_factory=Counter)
    flushes: int = 0


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


@dataclass
class _Decoded:
    """A fetched batch, decoded and split by workspace, not yet applied. The records
    themselves are not kept (their values would be held twice while batches wait for a
    flush): only how many each partition gave, and the rejected ones for their dead letters."""

    counts: dict[TopicPartition, int]
    facts: defaultdict[str, list[tuple[Source, Offsets, pa.Table]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    versions: defaultdict[str, defaultdict[Source, list[tuple[int, DimensionVersion]]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    rejected: list[tuple[Any, Rejected]] = field(default_factory=list)
    positions: dict[TopicPartition, int] = field(default_factory=dict)

    @property
    def records(self) -> int:
        return sum(self.counts.values())

    def only(self, assigned: Collection[TopicPartition]) -> _Decoded:
        """What came from the partitions still ``assigned`` (a rebalance while the batch
        waited revoked the others: their next owner reads them again)."""
        if set(self.counts) <= set(assigned):
            return self
        kept = {(tp.topic, tp.partition) for tp in self.counts if tp in assigned}
        result = _Decoded({tp: count for tp, count in self.counts.items() if tp in assigned})
        for org, chunks in self.facts.items():
            result.facts[org] = [chunk for chunk in chunks if chunk[0] in kept]
        for org, by_source in self.versions.items():
            for source, items in by_source.items():
                if source in kept:
                    result.versions[org][source] = items
        result.rejected = [
            (record, why)
            for record, why in self.rejected
            if (record.topic, record.partition) in kept
        ]
        result.positions = {tp: at for tp, at in self.positions.items() if tp in assigned}
        return result


#: While a flush is in flight, the loop fetches and decodes up to this many full batches,
#: then waits for the flush before applying them.
_WAITING_BATCHES: Final = 4


class IngestWorker:
    """One ingest process. ``await run()`` until ``stop`` is set (SIGTERM), then drain."""

    def __init__(
        self,
        settings: Settings,
        *,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        tables: TableStore,
        metrics: IngestMetrics | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self._settings = settings
        self._consumer = consumer
        self._producer = producer
        self._clock = clock
        self.writers = Writers(
            replace(tables, clock=clock),  # stamps the data files' modification times
            max_bytes=settings.ingest_cache_max_mb * 1024 * 1024,
            concurrency=settings.ingest_flush_concurrency,
        )
        self.stats = IngestStats()
        self._metrics = metrics
        self.checkpoint = Checkpoint()
        self._dead_letters: list[_DeadLetter] = []
        self._flush_lock = asyncio.Lock()
        self._last_flush = time.monotonic()

    @property
    def listener(self) -> ConsumerRebalanceListener:
        return RevokeListener(self.on_revoked, log)

    # ---- main loop ----------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        settings = self._settings
        flushing: asyncio.Task[None] | None = None
        waiting: list[_Decoded] = []  # decoded while a flush is in flight
        try:
            while not stop.is_set():
                batch = await self._consumer.getmany(
                    timeout_ms=int(min(settings.ingest_flush_interval_s, 0.5) * 1000),
                    max_records=settings.ingest_batch_max_records,
                )
                fetched = sum(len(records) for records in batch.values())
                if batch:
                    waiting.append(self.decode(batch))
                del batch  # the records go: their columns wait
                if flushing is not None:
                    held = sum(decoded.records for decoded in waiting)
                    limit = _WAITING_BATCHES * settings.ingest_batch_max_records
                    if fetched and not flushing.done() and held < limit:
                        continue  # fetch and decode more while the flush waits on the store
                    await flushing  # what it raised is raised here
                    flushing = None
                for decoded in waiting:
                    await self.apply(decoded.only(self._consumer.assignment()))
                waiting.clear()
                if flush_due(
                    settings,
                    elapsed_s=time.monotonic() - self._last_flush,
                    backlog=fetched >= settings.ingest_batch_max_records or self._behind(),
                    pending_facts=self.writers.pending,
                    over_bounds=self.writers.over_bounds(),
                ):
                    flushing = asyncio.create_task(self.flush_and_commit(stop))
            if flushing is not None:
                await flushing
                flushing = None
            for decoded in waiting:
                await self.apply(decoded.only(self._consumer.assignment()))
        finally:
            if flushing is not None:
                # The loop failed: the flush in flight ends as it would have (cancelled
                # mid-commit, its rows could be committed and still pending).
                with contextlib.suppress(Exception):
                    await flushing
        await self.flush_and_commit(stop, final=True)

    async def process(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """Decode a fetched batch and apply it to the writers."""
        await self.apply(self.decode(batch))

    def decode(self, batch: dict[TopicPartition, list[Any]]) -> _Decoded:
        """A fetched batch decoded and split by workspace; no writer is touched."""
        accepted = AcceptedRange.at(
            self._clock(), future_tolerance=timedelta(seconds=self._settings.future_tolerance_s)
        )
        result = _Decoded({tp: len(records) for tp, records in batch.items()})
        for tp, records in batch.items():
            self.stats.consumed += len(records)
            source = (tp.topic, tp.partition)
            decoded = decode_batch(
                [record.value for record in records],
                accepted,
                max_bytes=self._settings.max_event_bytes,
            )
            result.rejected.extend((records[index], why) for index, why in decoded.rejected)
            if decoded.fact_records:
                offsets = np.fromiter(
                    (records[index].offset for index in decoded.fact_records),
                    dtype=np.int64,
                    count=len(decoded.fact_records),
                )
                for org, selected in by_workspace(decoded.facts):
                    result.facts[org].append(
                        (source, offsets[selected], decoded.facts.take(selected))
                    )
            for index, org, version in decoded.dimensions:
                result.versions[org][source].append((records[index].offset, version))
            result.positions[tp] = records[-1].offset + 1
        return result

    async def apply(self, decoded: _Decoded) -> None:
        """Dead-letter the rejections, then add the rows to their workspaces' writers and
        advance the positions a commit may cover."""
        facts, versions = decoded.facts, decoded.versions
        for record, rejected in decoded.rejected:
            await self._dead_letter(record, rejected)
        positions = decoded.positions
        read = set(decoded.counts)
        sources = [(tp.topic, tp.partition) for tp in self._consumer.assignment() | read]
        # Open, apply and advance the positions under the flush lock: the revoke callback
        # (flush, commit) runs on the coordinator's task and must not commit records
        # whose rows are not pending yet.
        async with self._flush_lock:
            await self._retrying(
                "open the workspaces' tables", self._open, [*facts, *versions], sources
            )
            offered = applied = 0
            for org, chunks in facts.items():
                writer = self.writers[org]
                for source, offsets, rows in chunks:
                    result = await self._retrying(
                        "check event ids", writer.add_facts, source, offsets, rows
                    )
                    applied += result.applied
                    offered += result.applied + result.duplicates
            for org, by_source in versions.items():
                writer = self.writers[org]
                for source, items in by_source.items():
                    result = writer.add_dimensions(source, items)
                    applied += result.applied
                    offered += result.applied + result.duplicates
            self.stats.applied += applied
            self.stats.duplicates += offered - applied
            # Only now may a commit cover these records.
            self.checkpoint.advance(positions)
        if self._metrics is not None:
            self._metrics.events_consumed.inc(decoded.records)
            self._metrics.events_applied.inc(applied)
            self._metrics.events_duplicated.inc(offered - applied)
            self._report_lag(read)

    def _behind(self) -> bool:
        """Whether a backlog is waiting: the partitions read lag their high watermarks by
        a full batch or more (a fetch may come back short of a batch even then)."""
        lag = self.checkpoint.lag(self._highwater)
        return lag >= self._settings.ingest_batch_max_records

    async def _open(self, orgs: list[str], sources: list[Source]) -> None:
        await self.writers.ensure(orgs, sources)

    async def _retrying(self, what: str, action: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``action(*args)``; while the store is down, wait and retry (the batch is held,
        nothing is committed, fetching pauses)."""

        def warn(failure: Failure) -> None:
            log.warning("cannot %s (%s); retrying in %.1fs", what, failure.error, failure.delay_s)

        return await retry(
            lambda: action(*args),
            store_backoff(self._settings),
            retriable=_store_unavailable,
            on_retry=warn,
        )

    def _highwater(self, tp: TopicPartition) -> int | None:
        """The partition's high watermark; None once it is no longer assigned (aiokafka
        refuses to answer then; a revoke may land while a batch is being applied)."""
        if tp not in self._consumer.assignment():
            return None
        mark: int | None = self._consumer.highwater(tp)
        return mark

    def _report_lag(self, read: Collection[TopicPartition]) -> None:
        assert self._metrics is not None
        positions = self.checkpoint.next_offsets()
        for tp in read:
            highwater = self._highwater(tp)
            if highwater is not None and tp in positions:
                self._metrics.set_lag(tp.topic, tp.partition, highwater - positions[tp])

    async def _dead_letter(self, record: Any, rejected: Rejected) -> None:
        self.stats.dead_lettered[rejected.reason] += 1
        if self._metrics is not None:
            self._metrics.dead_lettered(rejected.reason)
        headers = headers_for_record(record, reason=rejected.reason, error=rejected.header)
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
            self.writers.over_bounds()
            self._last_flush = time.monotonic()
            if self._metrics is not None:
                self._metrics.set_cache(entries=len(self.writers.open), facts=self.writers.pending)

    async def _make_durable(self, stop: asyncio.Event | None, *, final: bool) -> None:
        """Every dead letter acknowledged, then the pending rows committed to the tables.
        While the broker or the store is down, hold everything (nothing is committed) and
        keep trying, each on its own backoff; fetching waits meanwhile, so memory stays
        bounded. Only the final drain after a stop gives up, once the backoff is longest."""
        positions = self.checkpoint.positions()

        async def flush() -> None:
            if not self.writers.pending:
                return
            report = await self.writers.flush(positions)
            self.stats.flushes += 1
            if self._metrics is not None:
                self._metrics.observe_flush(
                    report.seconds,
                    facts=report.rows,
                    states=report.workspaces,
                    conflicts=report.conflicts,
                )
            log.debug(
                "committed %s rows of %s workspaces in %.3fs (%s conflicts)",
                report.rows,
                report.workspaces,
                report.seconds,
                report.conflicts,
            )

        def warn(failure: Failure) -> None:
            log.warning(
                "cannot make state durable yet (%s); retrying in %.1fs",
                failure.error,
                failure.delay_s,
            )

        def gone_for_good(failure: Failure) -> bool:
            return final and stop is not None and stop.is_set() and failure.at_max

        await retry(
            self._dead_letters_acknowledged,
            broker_backoff(self._settings),
            on_retry=warn,
            give_up=gone_for_good,
        )
        await retry(
            flush,
            store_backoff(self._settings),
            retriable=_store_unavailable,
            on_retry=warn,
            give_up=gone_for_good,
        )

    # Shaped like the exporter's _commit on purpose (see there): the consequences differ.
    async def _commit(self) -> None:
        offsets = self.checkpoint.committable(self._consumer.assignment())
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # A rebalance took the partitions: what we applied is durable, the next owner
            # re-reads from the last commit and skips it by the tables' positions.
            log.warning("offset commit failed (%s); the next owner will skip it", exc)
            if self._metrics is not None:
                self._metrics.commit_failures.inc()
            return
        self.checkpoint.committed(offsets)

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        log.info("revoking %s", sorted((tp.topic, tp.partition) for tp in revoked))
        await self.flush_and_commit()
        self.checkpoint.forget(revoked)
        for tp in revoked:
            if self._metrics is not None:
                self._metrics.forget_partition(tp.topic, tp.partition)


def _store_unavailable(exc: Exception) -> bool:
    """What the tables raise while the object store is down (delta-rs' errors carry no
    ``retriable``): worth waiting out."""
    return isinstance(exc, STORE_ERRORS)


def by_workspace(facts: pa.Table) -> Iterator[tuple[str, pa.Array]]:
    """(org_id, row positions) of each workspace in ``facts``, in order of appearance."""
    codes = pc.dictionary_encode(facts.column("org_id")).combine_chunks()
    if len(codes.dictionary) == 1:
        yield codes.dictionary[0].as_py(), pa.array(np.arange(facts.num_rows))
        return
    indices = codes.indices.to_numpy(zero_copy_only=False)
    for code, org in enumerate(codes.dictionary.to_pylist()):
        yield org, pa.array(np.flatnonzero(indices == code))
