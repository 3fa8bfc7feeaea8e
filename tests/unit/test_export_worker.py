"""The worker's concurrency and offsets without a broker: a slow export does not hold
back the requests behind it, commits stop at the lowest unanswered request, unreadable
requests are dead-lettered, and every delivery gets its completion."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, cast

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.exporter.worker import ExporterWorker
from shared.contracts.completions import ExportCompletion
from shared.domain.export.request_validation import ReadableRequest
from shared.settings import Settings

TP = TopicPartition("usage.export-requests", 0)


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class FakeConsumer:
    def __init__(self, values: list[bytes]) -> None:
        self.pending = [Record(TP.topic, 0, offset, b"ws-1", value)
                        for offset, value in enumerate(values)]  # fmt: skip
        self.commits: list[dict[TopicPartition, int]] = []
        self._paused: set[TopicPartition] = set()

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict[Any, list[Record]]:
        await asyncio.sleep(0.01)
        if TP in self._paused or not self.pending:
            return {}
        batch, self.pending = self.pending[:max_records], self.pending[max_records:]
        return {TP: batch}

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def pause(self, *partitions: TopicPartition) -> None:
        self._paused.update(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self._paused.difference_update(partitions)

    def paused(self) -> set[TopicPartition]:
        return set(self._paused)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))


class FakeProducer:
    def __init__(self) -> None:
        self.sent: dict[str, list[tuple[bytes | None, bytes | None]]] = defaultdict(list)
        self.headers: dict[str, list[list[tuple[str, bytes]] | None]] = defaultdict(list)
        self.changed = asyncio.Condition()

    async def send_and_wait(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        self.sent[topic].append((key, value))
        self.headers[topic].append(headers)
        async with self.changed:
            self.changed.notify_all()

    async def until_sent(self, topic: str, count: int) -> None:
        async with self.changed:
            await self.changed.wait_for(lambda: len(self.sent[topic]) >= count)

    async def send(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
    ) -> asyncio.Future[None]:
        self.sent[topic].append((key, value))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


class GatedAnswerer:
    """Answers at once, except request ids starting with ``slow`` (until released)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.answered: list[str] = []
        self.running = 0
        self.most_running = 0

    async def answer(self, request: ReadableRequest) -> ExportCompletion:
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            if request.request_id.startswith("slow"):
                await self.release.wait()
            await asyncio.sleep(0.01)
        finally:
            self.running -= 1
        self.answered.append(request.request_id)
        return ExportCompletion.failed(request.request_id, request.org_id, 404, "No rows")


def request(request_id: str) -> bytes:
    return orjson.dumps({"request_id": request_id, "org_id": "ws-1"})


async def test_slow_request_does_not_block_and_holds_back_only_commits() -> None:
    settings = Settings(export_concurrency=2)
    consumer = FakeConsumer([request("slow-1"), *(request(f"fast-{n}") for n in range(5))])
    producer = FakeProducer()
    answerer = GatedAnswerer()
    worker = ExporterWorker(
        settings,
        consumer=cast(AIOKafkaConsumer, consumer),
        producer=cast(AIOKafkaProducer, producer),
        exporter=answerer,
    )
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    async with asyncio.timeout(10):
        await producer.until_sent(settings.topic_export_completions, 5)
    assert answerer.answered == [f"fast-{n}" for n in range(5)]
    assert answerer.most_running == 2  # the slow one and one fast one: the limit, no more
    assert all(commit[TP] == 0 for commit in consumer.commits)  # offset 0 is unanswered
    answerer.release.set()
    stop.set()
    await running
    assert consumer.commits[-1] == {TP: 6}
    completions = producer.sent[settings.topic_export_completions]
    assert len(completions) == 6
    assert {key for key, _ in completions} == {b"slow-1", *(f"fast-{n}".encode() for n in range(5))}


async def test_unreadable_requests_are_dead_lettered_and_committed() -> None:
    settings = Settings()
    consumer = FakeConsumer(
        [
            b"{not json",
            b'{"request_id": "r-1", "org_id": "ws-1" oops',
            request("ok-1"),
            request("ok-1"),
        ]
    )
    producer = FakeProducer()
    answerer = GatedAnswerer()
    worker = ExporterWorker(
        settings,
        consumer=cast(AIOKafkaConsumer, consumer),
        producer=cast(AIOKafkaProducer, producer),
        exporter=answerer,
    )
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    async with asyncio.timeout(10):
        await producer.until_sent(settings.topic_export_completions, 3)
    stop.set()
    await running
    assert producer.sent[settings.topic_export_requests_dlq] == [
        (b"ws-1", b"{not json"),
        (b"ws-1", b'{"request_id": "r-1", "org_id": "ws-1" oops'),
    ]
    keys = [key or b"" for key, _ in producer.sent[settings.topic_export_completions]]
    assert sorted(keys) == [b"ok-1", b"ok-1", b"r-1"]  # one completion per delivery
    assert answerer.answered == ["ok-1", "ok-1"]
    assert consumer.commits[-1] == {TP: 4}
    assert worker.stats.dead_lettered == 2


async def test_completions_of_requests_with_a_callback_carry_the_header() -> None:
    settings = Settings()
    asking = orjson.dumps(
        {"request_id": "cb-1", "org_id": "ws-1", "callback_url": "https://hooks.example/x"}
    )
    consumer = FakeConsumer([asking, request("plain-1")])
    producer = FakeProducer()
    worker = ExporterWorker(
        settings,
        consumer=cast(AIOKafkaConsumer, consumer),
        producer=cast(AIOKafkaProducer, producer),
        exporter=GatedAnswerer(),
    )
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    async with asyncio.timeout(10):
        await producer.until_sent(settings.topic_export_completions, 2)
    stop.set()
    await running
    topic = settings.topic_export_completions
    by_key = dict(
        zip((key for key, _ in producer.sent[topic]), producer.headers[topic], strict=True)
    )
    assert by_key[b"cb-1"] == [("usage-export-callback", b"1")]
    assert by_key[b"plain-1"] is None
