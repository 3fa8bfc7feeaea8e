"""A client of the exporter: publish export requests, wait for their completions.

Used by ``usage-export request``, ``usage-export demo`` and the integration tests. The
completions are read by ``shared.adapters.completions_reader`` (the reader the HTTP API's
waiter uses too), from the end of the topic as it was *before* the request was
published, so ours is never missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from shared import codec
from shared.adapters.completions_reader import CompletionsReader
from shared.adapters.kafka import make_producer
from shared.contracts.completions import ExportCompletion
from shared.lifecycle import StartStopContext
from shared.settings import Settings

_DOWNLOAD_TIMEOUT_S = 60.0


def export_request(
    org_id: str,
    data_type: str,
    from_date: str,
    to_date: str,
    *,
    timezone: str = "UTC",
    to_timezone: str | None = None,
    group_by: str | None = None,
    request_id: str | None = None,
    requested_by: str | None = None,
    export_format: str | None = None,
    bucket: str | None = None,
    callback_url: str | None = None,
    destination: str | None = None,
) -> dict[str, Any]:
    """A contract §3 request message (``format``, ``bucket``, ``callback_url`` and
    ``destination`` only when given: CSV, no buckets, no webhook and no copy by default)."""
    message = {
        "request_id": request_id or str(uuid.uuid4()),
        "org_id": org_id,
        "data_type": data_type,
        "from": {"date": from_date, "timezone": timezone},
        "to": {"date": to_date, "timezone": to_timezone or timezone},
        "group_by": group_by,
        "requested_by": requested_by,
    }
    if export_format is not None:
        message["format"] = export_format
    if bucket is not None:
        message["bucket"] = bucket
    if callback_url is not None:
        message["callback_url"] = callback_url
    if destination is not None:
        message["destination"] = destination
    return message


class ExportClient(StartStopContext):
    """``async with ExportClient(settings) as client: await client.request(message)``."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer = make_producer(settings)
        self._completions = CompletionsReader(settings)
        self._seen: dict[str, list[ExportCompletion]] = {}
        self._arrived = asyncio.Condition()
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            await self._producer.start()
            await self._completions.start()  # before anything is published
        except BaseException:
            await self.stop()
            raise
        self._reader = asyncio.create_task(self._read(), name="export-completions-reader")

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        await self._completions.stop()
        await self._producer.stop()

    async def _read(self) -> None:
        while True:
            completions = await self._completions.read()
            if not completions:
                continue
            for completion in completions:
                self._seen.setdefault(completion.request_id, []).append(completion)
            async with self._arrived:
                self._arrived.notify_all()

    async def send(self, message: dict[str, Any] | bytes, *, key: bytes | None = None) -> None:
        """Publish a request (a dict, or raw bytes to test malformed input)."""
        value = message if isinstance(message, bytes) else codec.dumps(message)
        if key is None and isinstance(message, dict):
            key = str(message.get("org_id", "")).encode()
        await self._producer.send_and_wait(
            self._settings.topic_export_requests, key=key, value=value
        )

    async def wait(self, request_id: str, *, within_s: float = 120.0) -> ExportCompletion:
        """The first completion with ``request_id`` read since this client started;
        it is consumed, so a second wait sees the next completion of that id."""
        async with asyncio.timeout(within_s), self._arrived:
            await self._arrived.wait_for(lambda: request_id in self._seen)
            arrived = self._seen[request_id]
            completion = arrived.pop(0)
            if not arrived:
                del self._seen[request_id]
            return completion

    async def request(
        self, message: dict[str, Any], *, within_s: float = 120.0
    ) -> ExportCompletion:
        await self.send(message)
        return await self.wait(str(message["request_id"]), within_s=within_s)


def _fetch(url: str, target: Path) -> int:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"refusing to download a non-HTTP URL: {url[:40]}")
    with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:  # noqa: S310 - scheme checked above
        body = response.read()
    target.write_bytes(body)
    return len(body)


async def download(url: str, target: Path) -> int:
    """Save the file behind a signed URL; returns its size in bytes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return await asyncio.to_thread(_fetch, url, target)
