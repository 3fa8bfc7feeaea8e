"""Waiting for consumer-group progress while watching that the services stay up."""

from __future__ import annotations

import asyncio
import time

from shared.settings import Settings
from tests.integration.kafka_tools import committed
from tests.integration.reliability.processes import ServiceProcess


async def wait_committed_while_alive(
    settings: Settings,
    ends: dict[int, int],
    *processes: ServiceProcess,
    timeout_s: float,
    group: str | None = None,
    topic: str | None = None,
) -> None:
    """Until the group committed ``ends`` on every partition; fails at once if one of
    ``processes`` exits, and after ``timeout_s`` (a functional bound, not a speed test)."""
    group = group or settings.ingest_group
    topic = topic or settings.topic_events
    deadline = time.monotonic() + timeout_s
    while True:
        for process in processes:
            process.check_alive()
            process.sample_memory()
        done = await committed(settings, group, topic, ends)
        if all(done[partition] >= end for partition, end in ends.items()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"group {group} committed {done}, expected {ends}")
        await asyncio.sleep(1.0)
