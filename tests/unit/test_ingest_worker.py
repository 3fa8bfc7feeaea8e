"""Worker invariants that need no broker: a commit never covers records not yet applied."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaTimeoutError

from services.ingest.worker import IngestWorker
from shared.settings import Settings

TP = TopicPartition("usage.events", 0)


@dataclass
class Record:
    offset: int
    value: bytes
    key: bytes = b"ws-1"


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


async def test_a_rebalance_while_a_batch_loads_commits_only_what_was_applied() -> None:
    consumer = FakeConsumer()
    worker = IngestWorker(
        Settings(),
        consumer=consumer,
        producer=None,  # type: ignore[arg-type]
        store=None,
        clock=lambda: datetime(2026, 11, 22, tzinfo=UTC),
    )  # type: ignore[arg-type]
    seen_while_loading: list[list[dict[TopicPartition, int]]] = []
    callbacks: list[asyncio.Task[None]] = []

    async def ensure_days(wanted: Any) -> None:
        from shared.storage.days import DayState

        for org, day in wanted:
            worker.cache.days[(org, day)] = DayState(org_id=org, day=day)
        # The revoke callback runs on the coordinator's task, here mid-load.
        callbacks.append(asyncio.create_task(worker.flush_and_commit()))
        await run_until_blocked(callbacks[-1])
        assert not callbacks[-1].done(), "the callback waits for the batch being loaded"
        seen_while_loading.append(list(consumer.commits))

    async def nothing_to_flush() -> Any:
        raise AssertionError("no state is dirty while loading")

    worker.cache.ensure_days = ensure_days  # type: ignore[method-assign]
    worker.cache.flush = nothing_to_flush  # type: ignore[method-assign]
    await worker.process({TP: [Record(offset=n, value=message(n)) for n in range(5)]})
    callbacks[0].cancel()  # it would flush the applied batch now; not this test's subject
    await asyncio.gather(*callbacks, return_exceptions=True)

    assert seen_while_loading == [[]], "nothing of the loading batch may be committed"
    assert worker.cache.days[("ws-1", date(2026, 11, 1))].event_ids == {f"e{n}" for n in range(5)}
    assert worker._positions == {TP: 5}


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


async def test_a_refused_dead_letter_is_sent_again_before_any_commit() -> None:
    consumer = FakeConsumer()
    producer = FlakyProducer()
    worker = IngestWorker(
        Settings(),
        consumer=consumer,
        producer=producer,  # type: ignore[arg-type]
        store=None,
    )  # type: ignore[arg-type]
    await worker.process({TP: [Record(offset=0, value=b"not json")]})
    with pytest.raises(KafkaTimeoutError):
        await worker._dead_letters_acknowledged()
    await worker._dead_letters_acknowledged()
    assert producer.sent == [b"not json", b"not json"]
    assert worker._dead_letters == []
