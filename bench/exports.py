"""The exporter under measurement: a subprocess, and timed requests to it."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from bench.consumers import EXPORTER_LOGGER, assigned_at
from bench.procs import Measured
from bench.stack import child_env
from shared import codec
from shared.adapters.completions_reader import CompletionsReader
from shared.adapters.export_client import export_request
from shared.adapters.kafka import make_producer
from shared.contracts.completions import ExportCompletion
from shared.domain.window import months_before
from shared.settings import Settings

#: The five export types of contract §3.
TYPES = ("users", "assistants", "api_keys", "projects", "models")


@dataclass(frozen=True, slots=True)
class Window:
    label: str
    first: date
    last: date


def windows(today: date) -> dict[str, Window]:
    """The windows the benchmark asks for (UTC), by label."""
    yesterday = today - timedelta(days=1)
    return {
        "12 months": Window("12 months", months_before(today, 12), today),
        "1 month": Window("1 month", months_before(today, 1), today),
        "1 day": Window("1 day", yesterday, yesterday),
        # Ends yesterday: its file must be byte-identical whenever it is asked for.
        "12 months to yesterday": Window("12 months to yesterday", months_before(today, 12),
                                         yesterday),
    }  # fmt: skip


class CompletionClient:
    """Publishes one request at a time and reads its completion.

    Like :class:`shared.adapters.export_client.ExportClient` (completions read without a
    group, from the end as it was before publishing) but fetching with a 20 ms wait: the
    embedded broker answers a fetch that finds nothing new only after
    ``fetch.max.wait.ms`` (aiokafka's default 500 ms) even when a record arrives in the
    meantime, which would add up to half a second of the benchmark's own making to each
    measured export.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer = make_producer(settings)
        self._reader = CompletionsReader(settings, fetch_max_wait_ms=20, poll_ms=200)

    async def start(self) -> None:
        await self._producer.start()
        await self._reader.start()

    async def stop(self) -> None:
        await self._reader.stop()
        await self._producer.stop()

    async def request(self, message: dict[str, Any], *, within_s: float) -> ExportCompletion:
        request_id = str(message["request_id"])
        await self._producer.send_and_wait(
            self._settings.topic_export_requests,
            key=str(message["org_id"]).encode(),
            value=codec.dumps(message),
        )
        async with asyncio.timeout(within_s):
            while True:
                for completion in await self._reader.read():
                    if completion.request_id == request_id:
                        return completion


@dataclass(frozen=True, slots=True)
class Timed:
    seconds: float
    completion: ExportCompletion


class RunningExporter:
    """``async with RunningExporter(settings, log_path) as exporter:`` — the real exporter
    service as a subprocess plus a client; ``await exporter.export(...)`` times one
    request end to end (request produced → completion consumed; the file is in S3)."""

    def __init__(self, settings: Settings, log_path: Path, *, within_s: float = 300.0) -> None:
        self._settings = settings
        self._within_s = within_s
        self.process = Measured(
            [sys.executable, "-m", "services", "exporter", "--log-level", "INFO"],
            env=child_env(settings),
            log_path=log_path,
        )
        self._client = CompletionClient(settings)

    async def __aenter__(self) -> Self:
        await self.process.start()
        try:
            await self._client.start()
        except BaseException:
            await self._client.stop()
            await self.process.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._client.stop()
        finally:
            self.process.sample_peak_rss()
            await self.process.stop()

    async def joined(self) -> float:
        """Wait, without any request, until the exporter's group join completes (its
        "assigned" log line); returns seconds from spawn until then."""
        deadline = time.monotonic() + self._within_s
        while True:
            at = assigned_at(self.process.log_text(), EXPORTER_LOGGER)
            if at is not None:
                return at - self.process.started_at
            if self.process.exited or time.monotonic() > deadline:
                raise RuntimeError(f"the exporter did not join:\n{self.process.log_tail()}")
            await asyncio.sleep(0.1)

    async def export(self, org_id: str, data_type: str, window: Window) -> Timed:
        message = export_request(
            org_id,
            data_type,
            window.first.isoformat(),
            window.last.isoformat(),
            request_id=str(uuid.uuid4()),  # file names use its first 8 characters
            requested_by="usage-export-bench",
        )
        began = time.perf_counter()
        completion = await self._client.request(message, within_s=self._within_s)
        elapsed = time.perf_counter() - began
        if self.process.exited:
            raise RuntimeError(f"the exporter exited:\n{self.process.log_tail()}")
        return Timed(elapsed, completion)
