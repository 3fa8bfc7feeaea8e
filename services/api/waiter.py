"""Completions for the requests this API process is waiting on: one reader, one map.

The completions are read by ``shared.adapters.completions_reader`` (no consumer group,
every partition, from the end, so history is never replayed). Each completion resolves
the future of its ``(org_id, request_id)`` — the workspace is part of the key, so a
completion of one tenant never answers another's request — and is remembered in a
bounded most-recent map for the status route and idempotent retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from shared.adapters.completions_reader import CompletionsReader, parse_completion
from shared.contracts.completions import ExportCompletion
from shared.lru import LruMap
from shared.settings import Settings

log = logging.getLogger(__name__)

RequestKey = tuple[str, str]  # (org_id, request_id)


def _log_reader_end(reader: asyncio.Task[None]) -> None:
    if not reader.cancelled() and reader.exception() is not None:
        log.error("the completions reader stopped", exc_info=reader.exception())


class TooManyWaiting(Exception):
    """The waiting map is full: answer 503 rather than grow without bound."""


class CompletionWaiter:
    """``async with waiter.waiting(org, rid) as future:`` publish, then await ``future``."""

    def __init__(self, settings: Settings, *, max_waiting: int, recent_size: int = 10_000) -> None:
        self._completions = CompletionsReader(settings, fetch_max_wait_ms=100)
        self._max_waiting = max_waiting
        self._waiting: dict[RequestKey, tuple[asyncio.Future[ExportCompletion], int]] = {}
        self._recent: LruMap[RequestKey, ExportCompletion] = LruMap(recent_size)
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._reader is not None:
            return
        await self._completions.start()
        self._reader = asyncio.create_task(self._read(), name="api-completions-reader")
        self._reader.add_done_callback(_log_reader_end)

    async def stop(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            # A reader that died of an error has logged it: stopping must still go on.
            with contextlib.suppress(BaseException):
                await reader
        await self._completions.stop()
        for future, _ in self._waiting.values():
            future.cancel()
        self._waiting.clear()

    @property
    def running(self) -> bool:
        return self._reader is not None and not self._reader.done()

    @property
    def waiting_count(self) -> int:
        return len(self._waiting)

    def recent(self, key: RequestKey) -> ExportCompletion | None:
        """The last completion read for ``key`` since this process started, if any."""
        return self._recent.get(key)

    def is_waiting(self, key: RequestKey) -> bool:
        return key in self._waiting

    @contextlib.asynccontextmanager
    async def waiting(self, key: RequestKey) -> AsyncIterator[asyncio.Future[ExportCompletion]]:
        """Register interest in ``key`` *before* publishing; concurrent callers share it."""
        if self._reader is not None and self._reader.done():
            # No completion would ever arrive: refuse now (503) rather than after the timeout.
            raise TooManyWaiting("the completions reader has stopped")
        entry = self._waiting.get(key)
        if entry is None:
            if len(self._waiting) >= self._max_waiting:
                raise TooManyWaiting(f"{len(self._waiting)} requests are waiting already")
            entry = (asyncio.get_running_loop().create_future(), 0)
        future, count = entry
        self._waiting[key] = (future, count + 1)
        try:
            yield future
        finally:
            current = self._waiting.get(key)
            if current is not None and current[0] is future:
                if current[1] <= 1:
                    del self._waiting[key]
                else:
                    self._waiting[key] = (future, current[1] - 1)

    async def _read(self) -> None:
        while True:
            for completion in await self._completions.read():
                self.resolve(completion)

    def accept(self, value: bytes | None) -> None:
        """One record value of the completions topic: remember it, wake its waiters."""
        completion = parse_completion(value)
        if completion is not None:
            self.resolve(completion)

    def resolve(self, completion: ExportCompletion) -> None:
        """Remember ``completion`` and wake the requests waiting on it."""
        if completion.org_id is None:
            return  # answers a request that could not be read: no caller of ours sent it
        key = (completion.org_id, completion.request_id)
        self._recent.put(key, completion)
        entry = self._waiting.get(key)
        if entry is not None and not entry[0].done():
            entry[0].set_result(completion)
