"""Worker invariants that need no broker: a commit never covers records not yet applied."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson
from aiokafka import TopicPartition

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

    async def ensure_days(wanted: Any) -> None:
        from shared.storage.days import DayState

        for org, day in wanted:
            worker.cache.days[(org, day)] = DayState(org_id=org, day=day)
        await worker.flush_and_commit()  # the revoke callback runs here, mid-load
        seen_while_loading.append(list(consumer.commits))

    async def nothing_to_flush() -> Any:
        raise AssertionError("no state is dirty while loading")

    worker.cache.ensure_days = ensure_days  # type: ignore[method-assign]
    worker.cache.flush = nothing_to_flush  # type: ignore[method-assign]
    await worker.process({TP: [Record(offset=n, value=message(n)) for n in range(5)]})

    assert seen_while_loading == [[]], "nothing of the loading batch may be committed"
    assert worker.cache.days[("ws-1", date(2026, 11, 1))].event_ids == {f"e{n}" for n in range(5)}
    assert worker._positions == {TP: 5}
