"""The exporter worker: export requests from Kafka, each answered by a task of its own.

A request is a task as soon as it is fetched; ``export_concurrency`` of them run at once
and the rest wait their turn, so one large export never holds back the small ones behind
it on its partition. Offsets are committed per partition only up to the lowest request
not yet answered (``offsets``); fetching pauses while too many requests are waiting.

Every request gets exactly one completion per delivery. A request that is not a request
(not JSON, not an object, no valid ``request_id``) goes to the dead-letter topic with its
original key and value and an ``error`` header; if a request id can still be read from
it, it gets a 400 completion too. Deliveries of the same request id are answered one at a
time (the second is answered from the first's record).

On stop: fetch nothing more, let the requests in flight finish (bounded by their
deadline), commit, return. Completions and dead letters are retried until the broker
takes them; an answer that could not be published is not committed, so it is redelivered
after a restart and answered again from its record.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from services.exporter.offsets import OffsetTracker
from shared import codec
from shared.adapters.dead_letters import headers_for_record, send_dead_letter
from shared.adapters.rebalance import RevokeListener
from shared.contracts.completions import CALLBACK_HEADER, ExportCompletion
from shared.domain.export.request_validation import ReadableRequest, Unreadable, read_request
from shared.observability import ExporterMetrics
from shared.retry import Failure, broker_backoff, retry
from shared.settings import Settings

log = logging.getLogger(__name__)
audit = logging.getLogger("usage_export.audit")

_POLL_MS = 200
_DRAIN_MARGIN_S = 15.0


class Answerer(Protocol):
    async def answer(self, request: ReadableRequest) -> ExportCompletion: ...


@dataclass
class ExporterStats:
    consumed: int = 0
    dead_lettered: int = 0
    completions: Counter[int] = field(default_factory=Counter)


class KeyedLocks:
    """One lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


class ExporterWorker:
    """One exporter process. ``await run(stop)`` until ``stop`` is set, then drain."""

    def __init__(
        self,
        settings: Settings,
        *,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        exporter: Answerer,
        metrics: ExporterMetrics | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._consumer = consumer
        self._producer = producer
        self._exporter = exporter
        self._running = asyncio.Semaphore(settings.export_concurrency)
        self._max_waiting = settings.export_concurrency * 4
        self._tracker: OffsetTracker[TopicPartition] = OffsetTracker()
        self._tasks: dict[tuple[TopicPartition, int], asyncio.Task[None]] = {}
        self._requests = KeyedLocks()
        self._stopping = False
        self.stats = ExporterStats()

    @property
    def listener(self) -> ConsumerRebalanceListener:
        return RevokeListener(self.on_revoked, log)

    # ---- main loop --------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            free = self._flow_control()
            batch = await self._consumer.getmany(timeout_ms=_POLL_MS, max_records=max(1, free))
            for tp, records in batch.items():
                for record in records:
                    self._start(tp, record)
            await self._commit()
        await self._drain()

    def _flow_control(self) -> int:
        """Pause fetching while too many requests wait; how many more may be fetched."""
        free = self._max_waiting - len(self._tasks)
        if free <= 0:
            self._consumer.pause(*self._consumer.assignment())
        elif self._consumer.paused():
            self._consumer.resume(*self._consumer.paused())
        return free

    def _start(self, tp: TopicPartition, record: Any) -> None:
        self.stats.consumed += 1
        self._tracker.started(tp, record.offset)
        key = (tp, record.offset)
        if key in self._tasks:  # fetched again after a rebalance while still in flight
            return
        task = asyncio.create_task(
            self._handle(record), name=f"export-{tp.partition}-{record.offset}"
        )
        self._tasks[key] = task
        task.add_done_callback(functools.partial(self._done, key))

    def _done(self, key: tuple[TopicPartition, int], task: asyncio.Task[None]) -> None:
        self._tasks.pop(key, None)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.error("request at %s offset %s not answered: %r", key[0], key[1], error)
            return  # left uncommitted: redelivered after a restart or rebalance
        self._tracker.finished(*key)

    # ---- one request ----------------------------------------------------------------
    async def _handle(self, record: Any) -> None:
        started = time.monotonic()
        if self._metrics is not None:
            self._metrics.in_flight.inc()
        try:
            payload = await self._answer(record)
        finally:
            if self._metrics is not None:
                self._metrics.in_flight.dec()
        if payload is not None:
            completion, data_type = payload
            seconds = time.monotonic() - started
            if self._metrics is not None:
                self._metrics.observe_completion(completion, seconds, data_type=data_type)
            _audit(completion, payload_of(record), seconds)

    async def _answer(self, record: Any) -> tuple[ExportCompletion, str | None] | None:
        readable = read_request(record.value, max_bytes=self._settings.max_event_bytes)
        if isinstance(readable, Unreadable):
            await self._dead_letter(record, readable)
            if readable.request_id is None:
                return None
            completion = ExportCompletion.failed(
                readable.request_id,
                readable.org_id,
                400,
                f"the request could not be read ({readable.header}); send one JSON "
                "object with request_id, org_id, data_type, from and to",
            )
            await self._publish(completion)
            return completion, None
        async with self._requests.hold((readable.org_id, readable.request_id)), self._running:
            completion = await self._exporter.answer(readable)
        await self._publish(completion, callback=readable.payload.get("callback_url") is not None)
        data_type = readable.payload.get("data_type")
        return completion, data_type if isinstance(data_type, str) else None

    async def _dead_letter(self, record: Any, unreadable: Unreadable) -> None:
        self.stats.dead_lettered += 1
        if self._metrics is not None:
            self._metrics.dead_lettered.labels(reason=unreadable.reason).inc()
        headers = headers_for_record(record, reason=unreadable.reason, error=unreadable.header)

        async def send() -> None:
            future = await send_dead_letter(
                self._producer,
                self._settings.topic_export_requests_dlq,
                key=record.key,
                value=record.value,
                headers=headers,
            )
            await future

        await self._until_sent(send, f"dead letter of offset {record.offset}")

    async def _publish(self, completion: ExportCompletion, *, callback: bool = False) -> None:
        value = codec.dumps(completion.model_dump(mode="json"))
        # The body is the contract's completion, untouched; the header tells the delivery
        # service that the request asked for a callback (it reads which in the request's
        # record), so completions without one cost it nothing.
        headers = [(CALLBACK_HEADER, b"1")] if callback else None

        async def send() -> None:
            await self._producer.send_and_wait(
                self._settings.topic_export_completions,
                key=completion.request_id.encode(),
                value=value,
                headers=headers,
            )

        await self._until_sent(send, f"completion of {completion.request_id}")
        status = 200 if completion.success else completion.error.status if completion.error else 500
        self.stats.completions[status] += 1

    async def _until_sent(self, send: Callable[[], Awaitable[None]], what: str) -> None:
        """``send()``, again while the broker cannot take it; once stopping, only until the
        backoff is longest (the drain's own deadline bounds the rest)."""

        def warn(failure: Failure) -> None:
            log.warning(
                "%s not sent yet (%s); retrying in %.1fs", what, failure.error, failure.delay_s
            )

        await retry(
            send,
            broker_backoff(self._settings),
            on_retry=warn,
            give_up=lambda failure: self._stopping and failure.at_max,
        )

    # ---- offsets -----------------------------------------------------------------------
    # Shaped like ingest's _commit on purpose, not shared: a failed commit here means the
    # requests are answered again from their records; there, records are skipped by position.
    async def _commit(self, partitions: set[TopicPartition] | None = None) -> None:
        scope = self._consumer.assignment() if partitions is None else partitions
        offsets = {tp: offset for tp, offset in self._tracker.committable().items() if tp in scope}
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            log.warning("offset commit failed (%s); the next owner re-answers from records", exc)
            return
        self._tracker.committed(offsets)

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        """Commit what is answered; requests in flight finish, unless fetched again."""
        await self._commit(revoked)
        self._tracker.forget(revoked)

    async def _drain(self) -> None:
        self._stopping = True
        if self._tasks:
            log.info("waiting for %s export request(s) in flight", len(self._tasks))
            _, late = await asyncio.wait(
                list(self._tasks.values()),
                timeout=self._settings.export_deadline_s + _DRAIN_MARGIN_S,
            )
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self._commit()


def payload_of(record: Any) -> dict[str, Any]:
    """The request's JSON object, or {} (for the audit line only)."""
    try:
        value = codec.loads(record.value) if record.value else {}
    except codec.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _audit(completion: ExportCompletion, request: dict[str, Any], seconds: float) -> None:
    """One line per answered request: who asked, what, which window, outcome, file."""

    def text(value: object) -> str | None:
        return value[:256] if isinstance(value, str) else None

    bounds = {
        name: {key: text(bound.get(key)) for key in ("date", "timezone")}
        for name in ("from", "to")
        if isinstance(bound := request.get(name), dict)
    }
    data = completion.data
    audit.info(
        "export %s %s",
        completion.request_id,
        "succeeded" if completion.success else "failed",
        extra={
            "request_id": completion.request_id,
            "org_id": completion.org_id,
            "requested_by": text(request.get("requested_by")),
            "data_type": text(request.get("data_type")),
            "group_by": text(request.get("group_by")),
            "window": bounds,
            "status": 200
            if completion.success
            else (completion.error.status if completion.error else 500),
            "error": completion.error.message if completion.error else None,
            "file": data.filePath if data else None,
            "records": data.recordCount if data else None,
            "bytes": data.bytes if data else None,
            "date_range": data.dateRange if data else None,
            "seconds": round(seconds, 3),
        },
    )
