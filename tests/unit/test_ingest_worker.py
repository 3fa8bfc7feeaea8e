"""Worker invariants that need no broker (tables in a local directory): a commit never
covers records not yet applied."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaTimeoutError
from deltalake import DeltaTable

from services.ingest.worker import IngestWorker
from shared.columnar.tables import FACTS_TABLE, TableStore, read_facts
from shared.settings import Settings

TP = TopicPartition("usage.events", 0)
DAY = date(2026, 11, 1)


@dataclass
class Record:
    offset: int
    value: bytes
    key: bytes = b"ws-1"
    topic: str = TP.topic
    partition: int = TP.partition


class FakeConsumer:
    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))

    def highwater(self, tp: TopicPartition) -> int | None:
        return None


async def run_until_blocked(task: asyncio.Task[Any], *, turns: int = 100) -> None:
    """Let ``task`` run until it suspends on something outside the loop's reach (a lock
    held by the caller). The fakes do no I/O, so a task that is not blocked finishes within
    a few turns of the loop: no timer decides what the test sees."""
    for _ in range(turns):
        if task.done():
            return
        await asyncio.sleep(0)


def message(number: int) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"e{number}",
            "type": "message",
            "org_id": "ws-1",
            "occurred_at": "2026-11-01T10:00:00Z",
            "user_id": "u1",
            "model": "m",
            "provider": "p",
        }
    )


def local_worker(tmp_path: Path, consumer: FakeConsumer, producer: Any = None) -> IngestWorker:
    return IngestWorker(
        Settings(),
        consumer=consumer,
        producer=producer,
        tables=TableStore.local(str(tmp_path)),
        clock=lambda: datetime(2026, 11, 22, tzinfo=UTC),
    )


async def test_a_rebalance_while_a_batch_loads_commits_only_what_was_applied(
    tmp_path: Path,
) -> None:
    consumer = FakeConsumer()
    worker = local_worker(tmp_path, consumer)
    seen_while_loading: list[list[dict[TopicPartition, int]]] = []
    callbacks: list[asyncio.Task[None]] = []
    ensure = worker.writers.ensure

    async def ensure_then_rebalance(orgs: Any, sources: Any) -> None:
        await ensure(orgs, sources)
        # The revoke callback runs on the coordinator's task, here mid-load.
        callbacks.append(asyncio.create_task(worker.flush_and_commit()))
        await run_until_blocked(callbacks[-1])
        assert not callbacks[-1].done(), "the callback waits for the batch being loaded"
        seen_while_loading.append(list(consumer.commits))

    worker.writers.ensure = ensure_then_rebalance  # type: ignore[method-assign]
    await worker.process({TP: [Record(offset=n, value=message(n)) for n in range(5)]})
    await asyncio.gather(*callbacks)

    assert seen_while_loading == [[]], "nothing of the loading batch may be committed"
    assert consumer.commits == [{TP: 5}], "the callback committed the batch once applied"
    stored = await read_facts(TableStore.local(str(tmp_path)), "ws-1", DAY, DAY, ["event_id"])
    assert sorted(stored.column("event_id").to_pylist()) == [f"e{n}" for n in range(5)]
    assert worker.checkpoint.next_offsets() == {TP: 5}
    assert worker.checkpoint.last_committed() == {TP: 5}


async def test_redelivered_records_are_skipped_by_position_and_by_id(tmp_path: Path) -> None:
    """A restart re-reads from the last Kafka commit: what the tables hold by position is
    skipped; an id produced again at a later offset (another day) is dropped by id."""
    first = local_worker(tmp_path, FakeConsumer())
    await first.process({TP: [Record(offset=n, value=message(n)) for n in range(5)]})
    await first.flush_and_commit()
    again = local_worker(tmp_path, FakeConsumer())
    later = message(2).replace(b"2026-11-01T10", b"2026-11-03T08")  # re-stamped e2
    await again.process(
        {TP: [*(Record(offset=n, value=message(n)) for n in range(3, 5)), Record(5, later)]}
    )
    await again.process({TP: [Record(offset=6, value=message(6))]})
    await again.flush_and_commit()

    assert (again.stats.applied, again.stats.duplicates) == (1, 3)
    stored = await read_facts(
        TableStore.local(str(tmp_path)), "ws-1", DAY, date(2026, 11, 30), ["event_id", "day"]
    )
    assert sorted(stored.column("event_id").to_pylist()) == [f"e{n}" for n in (0, 1, 2, 3, 4, 6)]
    assert set(stored.column("day").to_pylist()) == {DAY}


async def test_data_files_are_stamped_by_the_injected_clock(tmp_path: Path) -> None:
    """The add actions' modification times come from the worker's clock, not the host's."""
    worker = local_worker(tmp_path, FakeConsumer())
    await worker.process({TP: [Record(offset=n, value=message(n)) for n in range(3)]})
    await worker.flush_and_commit()

    table = DeltaTable(TableStore.local(str(tmp_path)).uri("ws-1", FACTS_TABLE))
    stamped = table.get_add_actions(flatten=True).column("modification_time").to_pylist()
    expected = datetime(2026, 11, 22, tzinfo=UTC)
    assert stamped
    assert {_as_utc(at) for at in stamped} == {expected}


def _as_utc(at: Any) -> datetime:
    """An add action's modification time as an aware datetime (delta-rs gives ms or a
    naive timestamp depending on the version)."""
    if isinstance(at, int):
        return datetime.fromtimestamp(at / 1000, tz=UTC)
    assert isinstance(at, datetime)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


class FlakyProducer:
    """The first send's acknowledgement fails; later ones succeed."""

    def __init__(self) -> None:
        self.sent: list[bytes | None] = []

    async def send(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
    ) -> asyncio.Future[Any]:
        self.sent.append(value)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if len(self.sent) == 1:
            future.set_exception(KafkaTimeoutError())
        else:
            future.set_result("ack")
        return future


async def test_a_refused_dead_letter_is_sent_again_before_any_commit(tmp_path: Path) -> None:
    producer = FlakyProducer()
    worker = local_worker(tmp_path, FakeConsumer(), producer)
    await worker.process({TP: [Record(offset=0, value=b"not json")]})
    with pytest.raises(KafkaTimeoutError):
        await worker._dead_letters_acknowledged()
    await worker._dead_letters_acknowledged()
    assert producer.sent == [b"not json", b"not json"]
    assert worker._dead_letters == []


class ScriptedConsumer(FakeConsumer):
    """Hands out the given batches one per ``getmany``, then sets ``stop``."""

    def __init__(self, batches: list[dict[TopicPartition, list[Record]]], stop: asyncio.Event):
        super().__init__()
        self._batches = batches
        self._stop = stop

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict[Any, list[Record]]:
        await asyncio.sleep(0)
        if not self._batches:
            self._stop.set()
            return {}
        return self._batches.pop(0)


async def test_the_next_batch_is_decoded_during_a_flush_and_applied_after_it(
    tmp_path: Path,
) -> None:
    """A flush runs while the loop fetches and decodes the next batch; that batch reaches
    the writers only once the flush is over, and every commit covers applied records."""
    stop = asyncio.Event()
    batches = [{TP: [Record(offset=n, value=message(n))]} for n in range(3)]
    consumer = ScriptedConsumer(batches, stop)
    settings = Settings(ingest_max_pending_facts=1)  # a flush after every batch
    worker = IngestWorker(
        settings,
        consumer=consumer,
        producer=None,
        tables=TableStore.local(str(tmp_path)),
        clock=lambda: datetime(2026, 11, 22, tzinfo=UTC),
    )
    events: list[str] = []
    flush, decode, apply = worker.writers.flush, worker.decode, worker.apply

    async def slow_flush(positions: Any) -> Any:
        events.append(f"flush {sorted(positions.values())} starts")
        for _ in range(20):  # long enough for the loop to fetch and decode meanwhile
            await asyncio.sleep(0)
        report = await flush(positions)
        events.append("flush ends")
        return report

    def traced_decode(batch: Any) -> Any:
        events.append(f"decode {[r.offset for r in batch[TP]]}")
        return decode(batch)

    async def traced_apply(decoded: Any) -> None:
        events.append(f"apply {[decoded.positions[TP] - 1]}")  # one record a batch
        await apply(decoded)

    worker.writers.flush = slow_flush  # type: ignore[method-assign]
    worker.decode = traced_decode  # type: ignore[method-assign]
    worker.apply = traced_apply  # type: ignore[method-assign]
    await worker.run(stop)

    # Batch 1 was decoded while the first flush was in flight, and applied after it.
    assert events.index("decode [1]") < events.index("flush ends")
    assert events.index("flush ends") < events.index("apply [1]")
    # No batch reaches the writers while a flush is in flight.
    in_flight = False
    for event in events:
        assert not (in_flight and event.startswith("apply")), events
        in_flight = event.endswith("starts") or (in_flight and event != "flush ends")
    assert consumer.commits[-1] == {TP: 3}
    assert all(list(commit.values()) <= [3] for commit in consumer.commits)
    stored = await read_facts(TableStore.local(str(tmp_path)), "ws-1", DAY, DAY, ["event_id"])
    assert sorted(stored.column("event_id").to_pylist()) == ["e0", "e1", "e2"]


async def test_a_batch_of_a_partition_revoked_while_it_waited_is_not_applied(
    tmp_path: Path,
) -> None:
    """A rebalance during a flush revokes a partition whose batch was decoded meanwhile:
    that batch is dropped (its next owner reads it again), and the loop goes on."""
    stop = asyncio.Event()
    other = TopicPartition(TP.topic, 1)
    batches: list[dict[TopicPartition, list[Record]]] = [
        {TP: [Record(offset=0, value=message(0))]},
        {other: [Record(offset=0, value=message(1), partition=1)]},
        {TP: [Record(offset=1, value=message(2))]},
    ]
    consumer = ScriptedConsumer(batches, stop)
    assigned = {TP, other}
    consumer.assignment = lambda: set(assigned)  # type: ignore[method-assign]
    worker = IngestWorker(
        Settings(ingest_max_pending_facts=1),
        consumer=consumer,
        producer=None,
        tables=TableStore.local(str(tmp_path)),
        clock=lambda: datetime(2026, 11, 22, tzinfo=UTC),
    )
    flush = worker.writers.flush

    async def flush_then_revoke(positions: Any) -> Any:
        for _ in range(20):  # the loop decodes the next batch meanwhile
            await asyncio.sleep(0)
        assigned.discard(other)
        return await flush(positions)

    worker.writers.flush = flush_then_revoke  # type: ignore[method-assign]
    await worker.run(stop)

    stored = await read_facts(TableStore.local(str(tmp_path)), "ws-1", DAY, DAY, ["event_id"])
    assert sorted(stored.column("event_id").to_pylist()) == ["e0", "e2"]
    assert other not in worker.checkpoint.next_offsets()
