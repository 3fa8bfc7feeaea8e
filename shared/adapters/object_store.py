"""What the services ask of the object store: one bucket's objects, as typed records.

:class:`ObjectStore` is the contract; ``shared.adapters.s3.S3ObjectStore`` is the one
implementation (aioboto3) and the unit tests' in-memory stores satisfy it too (mypy checks
both). Every service takes this protocol, never the concrete class.

Failures are the project's errors, whatever the backend: a missing object is ``None`` (or
no entry), a conditional write that lost a race is :class:`~shared.errors.PreconditionFailed`,
a store that stayed away through the retries is :class:`~shared.errors.StoreUnavailable`
(retriable), and a request the store refused for good (403, 400, ...) is
:class:`~shared.errors.StoreRefused`. No backend exception (botocore, aiohttp) escapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class StoredObject:
    """An object's bytes and ETag (``GET``)."""

    body: bytes
    etag: str


@dataclass(frozen=True, slots=True)
class ObjectHead:
    """An object's size, ETag, content type and user metadata (``HEAD``), without its bytes."""

    size: int
    etag: str
    content_type: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ListedObject:
    """One entry of a listing."""

    key: str
    size: int
    etag: str


class ObjectStore(Protocol):
    """One bucket of an S3-compatible store, started (the caller owns its lifecycle)."""

    @property
    def bucket(self) -> str: ...

    async def get(self, key: str) -> StoredObject | None:
        """The object's bytes and ETag, or None when it does not exist."""
        ...

    async def head(self, key: str) -> ObjectHead | None:
        """The object's size, ETag and user metadata, or None when it does not exist."""
        ...

    # Each signature here is repeated by S3ObjectStore and the test stores, on purpose:
    # that is what a Protocol is (mypy checks they agree).
    async def put(
        self,
        key: str,
        body: bytes,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
        content_type: str = "application/json",
    ) -> str:
        """Write an object; returns its new ETag. With ``if_match`` (an ETag) or
        ``if_none_match`` the write is conditional and a lost race raises
        :class:`~shared.errors.PreconditionFailed`."""
        ...

    async def put_with_metadata(
        self, key: str, body: bytes, *, content_type: str, metadata: dict[str, str]
    ) -> str:
        """An unconditional PUT that also stores user metadata; returns the ETag."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object (a missing one is not an error)."""
        ...

    async def list_objects(
        self, prefix: str, *, start_after: str | None = None
    ) -> list[ListedObject]:
        """Every object below ``prefix``, in key order; with ``start_after`` only those
        whose key sorts after it (S3's ``StartAfter``: the store skips the others, so a
        listing of what is new since a known key costs one request however many came
        before)."""
        ...

    async def list_prefixes(self, prefix: str) -> list[str]:
        """The "directories" directly below ``prefix`` (delimiter ``/``), each ending in ``/``."""
        ...

    async def presign_download(
        self, key: str, expires_s: int, *, filename: str | None = None
    ) -> str:
        """A URL that downloads the object for ``expires_s`` seconds (as ``filename``)."""
        ...

    async def create_multipart_upload(
        self, key: str, *, content_type: str, metadata: dict[str, str]
    ) -> str:
        """Start a multipart upload; returns its upload id. Nothing is visible yet."""
        ...

    async def upload_part(self, key: str, upload_id: str, part_number: int, body: bytes) -> str:
        """Upload one part (re-sending the same part number is idempotent); its ETag."""
        ...

    async def complete_multipart_upload(
        self, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> str:
        """Make the object visible, whole, under ``key``; its ETag. Raises
        :class:`~shared.errors.UploadNotFound` if the upload is gone (completed by an
        earlier attempt, or aborted)."""
        ...

    async def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        """Drop an unfinished upload and its parts (an unknown upload is not an error)."""
        ...

    async def check_bucket(self) -> None:
        """Raise unless the bucket answers now (one request, not retried: readiness)."""
        ...
