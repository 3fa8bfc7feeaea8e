"""A partition revoked while a batch's states load must not crash the worker.

Found by the fault suite (``tests/integration/reliability/test_ingest_group.py``): the
revoke callback runs on the consumer's coordinator task, so it can interleave with
``IngestWorker.process`` at any await. It used to flush, commit and then forget every
clean state — including the states ``process`` had just loaded for its batch — and
``process`` then died with ``KeyError`` on ``cache.day(key)``, taking the worker down.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Any

import orjson

from services.ingest.state_cache import FlushReport
from services.ingest.worker import IngestWorker
from shared.settings import Settings
from shared.storage.days import DayState
from shared.storage.dims import DimsState
from tests.unit.test_ingest_worker import TP, FakeConsumer, Record, run_until_blocked

DAY = date(2026, 11, 1)


def event(number: int, kind: str = "message") -> bytes:
    fields: dict[str, Any] = (
        {"user_id": "u1", "model": "m", "provider": "p"}
        if kind == "message"
        else {"user_id": "u1", "name": "Ada"}
    )
    return orjson.dumps(
        {
            "event_id": f"e{number}",
            "type": kind,
            "org_id": "ws-1",
            "occurred_at": "2026-11-01T10:00:00Z",
            **fields,
        }
    )


async def test_a_revoke_while_a_batch_loads_keeps_the_batch_and_the_worker() -> None:
    consumer = FakeConsumer()
    worker = IngestWorker(
        Settings(),
        consumer=consumer,
        producer=None,
        store=None,  # type: ignore[arg-type]
        clock=lambda: datetime(2026, 11, 22, tzinfo=UTC),
    )
    flushed: list[int] = []
    revoking: list[asyncio.Task[None]] = []

    async def ensure_days(wanted: Any) -> None:
        for org, day in wanted:
            worker.cache.days.setdefault((org, day), DayState(org_id=org, day=day))

    async def ensure_dims(wanted: Any) -> None:
        for org, kind in wanted:
            worker.cache.dims.setdefault((org, kind), DimsState(org_id=org, kind=kind))
        # The coordinator revokes the partition while this batch is still loading.
        revoking.append(asyncio.create_task(worker.on_revoked({TP})))
        await run_until_blocked(revoking[-1])
        assert not revoking[-1].done(), "the revoke waits for the batch being loaded"

    async def flush() -> FlushReport:
        flushed.append(worker.cache.pending_facts)
        return FlushReport()

    worker.cache.ensure_days = ensure_days  # type: ignore[method-assign]
    worker.cache.ensure_dims = ensure_dims  # type: ignore[method-assign]
    worker.cache.flush = flush  # type: ignore[method-assign]
    batch = [Record(offset=n, value=event(n)) for n in range(4)]
    batch.append(Record(offset=4, value=event(4, "user_upserted")))

    await worker.process({TP: batch})
    await revoking[0]

    assert worker.stats.applied == 5
    assert flushed == [4]  # the revoke made the applied batch durable ...
    assert consumer.commits == [{TP: 5}]  # ... and only then committed it
