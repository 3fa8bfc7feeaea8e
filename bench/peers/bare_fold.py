"""The ceiling: an aiokafka ``getmany`` loop that decodes with orjson, adds to a dict and
commits after every batch. ``python -m bench.peers.bare_fold`` (``BENCH_*`` variables)."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from bench.peers.common import Marks, PeerConfig, utc_day


async def run(config: PeerConfig, stop: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(
        config.topic,
        bootstrap_servers=config.bootstrap,
        group_id=config.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=config.session_timeout_ms,
        heartbeat_interval_ms=1000,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    marks = Marks(config.marks, config.expected)
    totals: dict[tuple[str, str, str, str], list[int]] = {}
    loads = orjson.loads
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=500, max_records=20_000)
            if not batch:
                continue
            for records in batch.values():
                marks.seen(len(records))
                for record in records:
                    event: dict[str, Any] = loads(record.value)
                    if event.get("type") != "message":
                        continue
                    key = (
                        event["org_id"],
                        utc_day(event["occurred_at"]),
                        event["user_id"],
                        event["model"],
                    )
                    usage = event.get("usage") or {}
                    total = totals.get(key)
                    if total is None:
                        total = totals[key] = [0, 0, 0, 0, 0, 0]
                    total[0] += 1
                    total[1] += event.get("requests") or 1
                    total[2] += usage.get("prompt_tokens") or 0
                    total[3] += usage.get("completion_tokens") or 0
                    total[4] += usage.get("cached_prompt_tokens") or 0
                    total[5] += usage.get("cache_creation_tokens") or 0
            await consumer.commit()
            marks.folded(sum(len(records) for records in batch.values()))
    finally:
        await consumer.stop()
        marks.close(keys=len(totals))


def main() -> None:
    config = PeerConfig.from_env()

    async def body() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await run(config, stop)

    asyncio.run(body())


if __name__ == "__main__":
    main()
