"""A partition revoked while a batch's workspaces load must not crash the worker.

Found by the fault suite (``tests/integration/reliability/test_ingest_group.py``): the
revoke callback runs on the consumer's coordinator task, so it can interleave with
``IngestWorker.process`` at any await. It used to flush, commit and then forget every
clean state — including the states ``process`` had just loaded for its batch — and
``process`` then died with ``KeyError``, taking the worker down. The revoke now waits for
the batch, then makes it durable and commits it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson

from services.ingest.writers import FlushReport
from tests.unit.test_ingest_worker import (
    TP,
    FakeConsumer,
    Record,
    local_worker,
    run_until_blocked,
)


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


async def test_a_revoke_while_a_batch_loads_keeps_the_batch_and_the_worker(
    tmp_path: Path,
) -> None:
    consumer = FakeConsumer()
    worker = local_worker(tmp_path, consumer)
    flushed: list[int] = []
    revoking: list[asyncio.Task[None]] = []
    ensure, flush = worker.writers.ensure, worker.writers.flush

    async def ensure_then_revoke(orgs: Any, sources: Any) -> None:
        await ensure(orgs, sources)
        # The coordinator revokes the partition while this batch is still loading.
        revoking.append(asyncio.create_task(worker.on_revoked({TP})))
        await run_until_blocked(revoking[-1])
        assert not revoking[-1].done(), "the revoke waits for the batch being loaded"

    async def counted_flush(positions: Any) -> FlushReport:
        flushed.append(worker.writers.pending)
        return await flush(positions)

    worker.writers.ensure = ensure_then_revoke  # type: ignore[method-assign]
    worker.writers.flush = counted_flush  # type: ignore[method-assign]
    batch = [Record(offset=n, value=event(n)) for n in range(4)]
    batch.append(Record(offset=4, value=event(4, "user_upserted")))

    await worker.process({TP: batch})
    await revoking[0]

    assert worker.stats.applied == 5
    assert flushed == [5]  # the revoke made the applied batch durable ...
    assert consumer.commits == [{TP: 5}]  # ... and only then committed it
    assert worker.writers.pending == 0
