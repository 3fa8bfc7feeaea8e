"""Streaming upload of one export file: bytes in, one whole object out, or nothing.

A file that fits in one part is written with a single PUT at the end; a larger one goes
up as a multipart upload of ``part_size`` parts while it is being written, so memory holds
at most one part. Either way the object appears under its key only when it is complete
(S3 makes a multipart object visible at ``CompleteMultipartUpload``), and on any failure
the multipart upload is aborted so no parts linger. An upload left behind by a crashed
process is invisible; a bucket lifecycle rule (``AbortIncompleteMultipartUpload``) is the
operator's safety net for those.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from types import TracebackType
from typing import Self

from shared.adapters.object_store import ObjectStore
from shared.errors import UploadNotFound, UsageExportError

log = logging.getLogger(__name__)

#: Metadata key that identifies one upload attempt (lets a retried complete recognise
#: that its first attempt did succeed).
NONCE_METADATA = "upload-nonce"
_ABORT_TIMEOUT_S = 10.0


class StreamingUpload:
    """``async with StreamingUpload(...) as upload: await upload.write(...)``; then
    ``await upload.complete()``. Leaving the block with an exception aborts."""

    def __init__(
        self,
        store: ObjectStore,
        key: str,
        *,
        part_size: int,
        content_type: str,
        metadata: dict[str, str],
    ) -> None:
        self._store = store
        self.key = key
        self._part_size = part_size
        self._content_type = content_type
        self._nonce = uuid.uuid4().hex
        self._metadata = metadata | {NONCE_METADATA: self._nonce}
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[tuple[int, str]] = []
        self._completed = False

    @property
    def parts(self) -> int:
        """Parts uploaded so far (0 for a file written with a single PUT)."""
        return len(self._parts)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            await self.abort()

    async def write(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= self._part_size:
            part = bytes(self._buffer[: self._part_size])
            del self._buffer[: self._part_size]
            await self._upload_part(part)

    async def _upload_part(self, body: bytes) -> None:
        if self._upload_id is None:
            self._upload_id = await self._store.create_multipart_upload(
                self.key, content_type=self._content_type, metadata=self._metadata
            )
        number = len(self._parts) + 1
        etag = await self._store.upload_part(self.key, self._upload_id, number, body)
        self._parts.append((number, etag))

    async def complete(self) -> None:
        """Publish the whole file under its key."""
        if self._upload_id is None:
            await self._store.put_with_metadata(
                self.key,
                bytes(self._buffer),
                content_type=self._content_type,
                metadata=self._metadata,
            )
        else:
            if self._buffer:
                await self._upload_part(bytes(self._buffer))
            try:
                await self._store.complete_multipart_upload(self.key, self._upload_id, self._parts)
            except UploadNotFound:
                # A retried complete whose first attempt succeeded finds no upload.
                if not await self._is_mine():
                    raise
        self._buffer = bytearray()
        self._completed = True

    async def _is_mine(self) -> bool:
        head = await self._store.head(self.key)
        return head is not None and head.metadata.get(NONCE_METADATA) == self._nonce

    async def abort(self) -> None:
        """Drop the unfinished upload; best effort, bounded in time (never raises)."""
        self._buffer = bytearray()
        if self._upload_id is None or self._completed:
            return
        upload_id, self._upload_id = self._upload_id, None
        with contextlib.suppress(UsageExportError, TimeoutError):
            await asyncio.wait_for(
                self._store.abort_multipart_upload(self.key, upload_id), _ABORT_TIMEOUT_S
            )
            return
        log.warning("could not abort multipart upload %s of %s", upload_id, self.key)
