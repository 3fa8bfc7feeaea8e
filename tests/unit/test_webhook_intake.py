"""The delivery service's intake: completions without the callback header cost no store
call, a completion read twice is one pending delivery, a refused callback (none in the
record) makes none, and offsets are committed only after the deliveries are durable."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from aiokafka import AIOKafkaConsumer, TopicPartition

from services.delivery.intake import Intake
from services.delivery.pending import PENDING_PREFIX, PendingStore
from shared.adapters.request_ledger import RequestLedger
from shared.clock import fixed_clock
from shared.contracts.completions import CALLBACK_HEADER
from shared.errors import StoreUnavailable
from shared.settings import Settings
from tests.unit.memory_store import MemoryStore

START = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
TP = TopicPartition("usage.export-completions", 0)
HEADER = [(CALLBACK_HEADER, b"1")]


def completion(request_id: str) -> bytes:
    return f'{{"request_id":"{request_id}","org_id":"ws-1","success":false}}'.encode()


@dataclass
class Record:
    offset: int
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class FakeConsumer:
    def __init__(self, records: list[Record], stop: asyncio.Event) -> None:
        self.pending = records
        self.commits: list[dict[TopicPartition, int]] = []
        self._stop = stop

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict[Any, list[Record]]:
        await asyncio.sleep(0)
        if not self.pending:
            self._stop.set()
            return {}
        batch, self.pending = self.pending[:2], self.pending[2:]
        return {TP: batch}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))


async def test_intake_reads_records_only_for_callbacks_and_dedups() -> None:
    store = MemoryStore()
    ledger = RequestLedger(store)
    for request_id, url in (("r-hook", "https://hooks.example/x"), ("r-refused", None)):
        record = await ledger.open("ws-1", request_id, START)
        if url is not None:
            await ledger.note_callback(record, url)
    records = [
        Record(0, completion("r-plain")),  # no header: no store call at all
        Record(1, completion("r-hook"), HEADER),
        Record(2, completion("r-hook"), HEADER),  # read twice
        Record(3, completion("r-refused"), HEADER),  # callback refused: not in the record
    ]
    stop = asyncio.Event()
    consumer = FakeConsumer(records, stop)
    wake = asyncio.Event()
    store.gets.clear()
    intake = Intake(
        Settings(),
        consumer=cast(AIOKafkaConsumer, consumer),
        ledger=ledger,
        pending=PendingStore(store),
        wake=wake,
        clock=fixed_clock(START),
    )
    await asyncio.wait_for(intake.run(stop), 10)
    pending = [key for key in store.objects if key.startswith(PENDING_PREFIX)]
    assert len(pending) == 1
    assert pending[0].startswith(f"{PENDING_PREFIX}ws-1/r-hook.")
    assert wake.is_set()
    assert not any("r-plain" in key for key in store.gets)
    assert consumer.commits == [{TP: 2}, {TP: 4}]


async def test_nothing_is_committed_while_the_store_cannot_take_the_delivery() -> None:
    store = MemoryStore()
    ledger = RequestLedger(store)
    record = await ledger.open("ws-1", "r-hook", START)
    await ledger.note_callback(record, "https://hooks.example/x")
    stop = asyncio.Event()
    consumer = FakeConsumer([Record(0, completion("r-hook"), HEADER)], stop)
    store.fail = StoreUnavailable
    intake = Intake(
        Settings(s3_retry_base_s=0.01, s3_retry_max_s=0.02),
        consumer=cast(AIOKafkaConsumer, consumer),
        ledger=ledger,
        pending=PendingStore(store),
        wake=asyncio.Event(),
        clock=fixed_clock(START),
    )
    running = asyncio.create_task(intake.run(stop))
    await asyncio.sleep(0.2)
    assert consumer.commits == []  # still retrying, nothing committed
    store.fail = None
    await asyncio.wait_for(running, 10)
    assert consumer.commits == [{TP: 1}]
    assert [key for key in store.objects if key.startswith(PENDING_PREFIX)]


async def test_an_unreadable_request_record_skips_its_webhook_not_the_others() -> None:
    # It raised out of run(): the service stopped, and after each restart it read the same
    # batch again and stopped again, so no webhook was ever taken in after it.
    store = MemoryStore()
    ledger = RequestLedger(store)
    store.objects["requests/ws-1/r-bad.json"] = (b'{"schema": 1}', '"b1"', {})
    record = await ledger.open("ws-1", "r-hook", START)
    await ledger.note_callback(record, "https://hooks.example/x")
    stop = asyncio.Event()
    records = [Record(0, completion("r-bad"), HEADER), Record(1, completion("r-hook"), HEADER)]
    consumer = FakeConsumer(records, stop)
    intake = Intake(
        Settings(),
        consumer=cast(AIOKafkaConsumer, consumer),
        ledger=ledger,
        pending=PendingStore(store),
        wake=asyncio.Event(),
        clock=fixed_clock(START),
    )
    await asyncio.wait_for(intake.run(stop), 10)
    pending = [key for key in store.objects if key.startswith(PENDING_PREFIX)]
    assert len(pending) == 1
    assert pending[0].startswith(f"{PENDING_PREFIX}ws-1/r-hook.")
    assert consumer.commits == [{TP: 2}]
