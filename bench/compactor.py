"""The compactor as a child process of a benchmark, apart from ingest: started once ingest
has committed everything, kept running until the dataset is tidy (every closed month
merged and rolled up: what exports read), then stopped. Its peak RSS is its own, reported
beside ingest's (``bench.procs`` reads each process's ``VmHWM``)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from bench.procs import Measured
from bench.stack import child_env
from shared.settings import Settings


@dataclass
class CompactorRun:
    #: From the compactor's spawn until the dataset was tidy (None: not within the timeout).
    settle_s: float | None = None
    peak_rss_mb: float | None = None
    error: str | None = None


def compactor_argv() -> list[str]:
    return [sys.executable, "-m", "services", "compactor", "--log-level", "INFO"]


async def compact_until_tidy(
    settings: Settings,
    tidy: Callable[[], Awaitable[bool]],
    log_path: Path,
    *,
    timeout_s: float = 600.0,
) -> CompactorRun:
    """Run ``python -m services compactor`` with ``settings`` until ``tidy()`` is true (at
    most ``timeout_s``), then stop it."""
    run = CompactorRun()
    process = Measured(compactor_argv(), env=child_env(settings), log_path=log_path)
    try:
        await process.start()
        began = time.monotonic()
        while not await tidy():
            if process.exited or time.monotonic() - began > timeout_s:
                state = "exited" if process.exited else f"not tidy after {timeout_s:.0f} s"
                run.error = f"the compactor {state}; log tail:\n{process.log_tail()}"
                return run
            await asyncio.sleep(1.0)
        run.settle_s = time.monotonic() - began
    finally:
        run.peak_rss_mb = process.sample_peak_rss()
        await process.stop()
    return run
