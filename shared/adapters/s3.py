"""Object store adapter (aioboto3), with retries, backoff and conditional writes.

Every call is retried on transient failures (connection errors, timeouts, 5xx, throttling)
with jittered exponential backoff; after ``s3_max_attempts`` it raises
:class:`StoreUnavailable` (retriable) so the caller decides whether to wait longer.
Conditional writes (``If-Match`` / ``If-None-Match: *``) fence concurrent writers: a lost
race raises :class:`PreconditionFailed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Self, TypeVar

import aioboto3
import aiohttp
from aiobotocore.config import AioConfig
from botocore.exceptions import BotoCoreError, ClientError

from shared.adapters.s3_lean import LeanS3, SigV4Signer, TransientStatus
from shared.errors import PreconditionFailed, StoreUnavailable
from shared.retry import Failure, retry, store_backoff
from shared.settings import Settings

T = TypeVar("T")
log = logging.getLogger(__name__)

_NOT_FOUND = {"NoSuchKey", "404", "NotFound", "NoSuchUpload"}
_PRECONDITION = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}
_TRANSIENT_STATUS = {500, 502, 503, 504, 429}


@dataclass(frozen=True, slots=True)
class StoredObject:
    body: bytes
    etag: str


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, TransientStatus | aiohttp.ClientError):
        return True
    if isinstance(exc, ClientError):
        return _status(exc) in _TRANSIENT_STATUS or _error_code(exc) in {
            "SlowDown",
            "InternalError",
            "ServiceUnavailable",
            "RequestTimeout",
            "RequestTimeTooSkewed",
        }
    return isinstance(exc, BotoCoreError | OSError | asyncio.TimeoutError)


class ObjectStore:
    """One bucket of the S3-compatible store. ``async with ObjectStore(...)`` or start/stop."""

    def __init__(self, settings: Settings, bucket: str, *, max_attempts: int | None = None) -> None:
        self._settings = settings
        self.bucket = bucket
        self._max_attempts = max_attempts or settings.s3_max_attempts
        self._session = aioboto3.Session()
        self._client_cm: Any = None
        self._client: Any = None
        self._lean: LeanS3 | None = None
        self._presign_cm: Any = None
        self._presigner: Any = None

    # ---- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        if self._client is not None:
            return
        s = self._settings
        pool = max(32, s.ingest_flush_concurrency * 2)
        config = AioConfig(
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=s.s3_connect_timeout_s,
            read_timeout=s.s3_read_timeout_s,
            s3={"addressing_style": "path"},
            signature_version="s3v4",
            max_pool_connections=pool,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._client_cm = self._session.client(
            "s3",
            endpoint_url=s.s3_endpoint,
            aws_access_key_id=s.s3_access_key.get_secret_value(),
            aws_secret_access_key=s.s3_secret_key.get_secret_value(),
            region_name=s.s3_region,
            config=config,
        )
        self._client = await self._client_cm.__aenter__()
        if s.s3_presign_access_key is not None and s.s3_presign_secret_key is not None:
            # Download URLs carry the read-only identity's signature, never the main one's.
            self._presign_cm = self._session.client(
                "s3",
                endpoint_url=s.s3_endpoint,
                aws_access_key_id=s.s3_presign_access_key.get_secret_value(),
                aws_secret_access_key=s.s3_presign_secret_key.get_secret_value(),
                region_name=s.s3_region,
                config=config,
            )
            self._presigner = await self._presign_cm.__aenter__()
        if s.s3_lean_client:
            self._lean = LeanS3(
                endpoint=s.s3_endpoint,
                bucket=self.bucket,
                signer=SigV4Signer(
                    access_key=s.s3_access_key.get_secret_value(),
                    secret_key=s.s3_secret_key.get_secret_value(),
                    region=s.s3_region,
                ),
                connect_timeout_s=s.s3_connect_timeout_s,
                read_timeout_s=s.s3_read_timeout_s,
                max_connections=pool,
            )
            await self._lean.start()

    async def stop(self) -> None:
        if self._presign_cm is not None:
            presign_cm, self._presign_cm, self._presigner = self._presign_cm, None, None
            await presign_cm.__aexit__(None, None, None)
        if self._lean is not None:
            lean, self._lean = self._lean, None
            await lean.stop()
        if self._client_cm is not None:
            client_cm, self._client_cm, self._client = self._client_cm, None, None
            await client_cm.__aexit__(None, None, None)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def client(self) -> Any:
        if self._client is None:
            raise RuntimeError("ObjectStore is not started")
        return self._client

    # ---- retry ------------------------------------------------------------------------
    async def _retry(self, operation: Callable[[], Awaitable[T]], what: str) -> T:
        backoff = replace(store_backoff(self._settings), jitter=True, attempts=self._max_attempts)

        def inform(failure: Failure) -> None:
            tries = f"{failure.attempt}/{backoff.attempts}"
            log.info("%s failed (attempt %s): %s", what, tries, failure.error)

        try:
            return await retry(operation, backoff, retriable=_is_transient, on_retry=inform)
        except Exception as exc:
            if _is_transient(exc):  # the last try failed too
                raise StoreUnavailable(f"{what}: {exc}") from exc
            raise

    # ---- objects ----------------------------------------------------------------------
    async def get(self, key: str) -> StoredObject | None:
        """The object's bytes and ETag, or None when it does not exist."""

        lean = self._lean

        async def operation() -> StoredObject | None:
            if lean is not None:
                found = await lean.get(key)
                return None if found is None else StoredObject(body=found[0], etag=found[1])
            try:
                response = await self.client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if _error_code(exc) in _NOT_FOUND:
                    return None
                raise
            async with response["Body"] as stream:
                body = await stream.read()
            return StoredObject(body=body, etag=response["ETag"])

        return await self._retry(operation, f"GET {key}")

    async def put(
        self,
        key: str,
        body: bytes,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
        content_type: str = "application/json",
    ) -> str:
        """Write an object; returns its new ETag. Conditional when asked (fencing)."""
        extra: dict[str, str] = {}
        if if_match is not None:
            extra["IfMatch"] = if_match
        elif if_none_match:
            extra["IfNoneMatch"] = "*"

        lean = self._lean

        async def operation() -> str:
            if lean is not None:
                return await lean.put(
                    key,
                    body,
                    content_type=content_type,
                    if_match=if_match,
                    if_none_match=if_none_match,
                )
            try:
                response = await self.client.put_object(
                    Bucket=self.bucket, Key=key, Body=body, ContentType=content_type, **extra
                )
            except ClientError as exc:
                if extra and (_error_code(exc) in _PRECONDITION or _status(exc) in {409, 412}):
                    raise PreconditionFailed(f"conditional PUT {key} lost a race") from exc
                raise
            return str(response["ETag"])

        return await self._retry(operation, f"PUT {key}")

    async def delete(self, key: str) -> None:
        lean = self._lean

        async def operation() -> None:
            if lean is not None:
                return await lean.delete(key)
            await self.client.delete_object(Bucket=self.bucket, Key=key)

        await self._retry(operation, f"DELETE {key}")

    async def list_prefixes(self, prefix: str) -> list[str]:
        """The "directories" directly below ``prefix`` (delimiter ``/``)."""
        found: list[str] = []
        async for page in self._pages(prefix, delimiter="/"):
            found.extend(entry["Prefix"] for entry in page.get("CommonPrefixes", []))
        return found

    async def list_objects(self, prefix: str) -> list[dict[str, Any]]:
        """Every object below ``prefix`` (Key, Size, ETag, LastModified)."""
        found: list[dict[str, Any]] = []
        async for page in self._pages(prefix, delimiter=None):
            found.extend(page.get("Contents", []))
        return found

    async def _pages(self, prefix: str, delimiter: str | None) -> AsyncIterator[dict[str, Any]]:
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
            if delimiter:
                kwargs["Delimiter"] = delimiter
            if token:
                kwargs["ContinuationToken"] = token

            async def operation(kw: dict[str, Any] = kwargs) -> dict[str, Any]:
                result: dict[str, Any] = await self.client.list_objects_v2(**kw)
                return result

            page = await self._retry(operation, f"LIST {prefix}")
            yield page
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")

    async def presign_download(
        self, key: str, expires_s: int, *, filename: str | None = None
    ) -> str:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if filename:
            params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
        signer = self._presigner if self._presigner is not None else self.client
        url: str = await signer.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=expires_s
        )
        return url

    async def ensure_bucket(self) -> None:
        async def operation() -> None:
            try:
                await self.client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if _status(exc) != 404 and _error_code(exc) not in {"404", "NoSuchBucket"}:
                    raise
                with contextlib.suppress(ClientError):
                    await self.client.create_bucket(Bucket=self.bucket)

        await self._retry(operation, f"CREATE BUCKET {self.bucket}")

    # ---- metadata and multipart uploads (the exporter's streamed files) ----------------
    async def head(self, key: str) -> dict[str, Any] | None:
        """``ContentLength``, ``ETag`` and user ``Metadata`` of an object, or None."""

        async def operation() -> dict[str, Any] | None:
            try:
                response: dict[str, Any] = await self.client.head_object(
                    Bucket=self.bucket, Key=key
                )
            except ClientError as exc:
                if _error_code(exc) in _NOT_FOUND or _status(exc) == 404:
                    return None
                raise
            return response

        return await self._retry(operation, f"HEAD {key}")

    async def put_with_metadata(
        self, key: str, body: bytes, *, content_type: str, metadata: dict[str, str]
    ) -> str:
        """An unconditional PUT that also stores user metadata; returns the ETag."""

        async def operation() -> str:
            response = await self.client.put_object(
                Bucket=self.bucket, Key=key, Body=body, ContentType=content_type, Metadata=metadata
            )
            return str(response["ETag"])

        return await self._retry(operation, f"PUT {key}")

    async def create_multipart_upload(
        self, key: str, *, content_type: str, metadata: dict[str, str]
    ) -> str:
        """Start a multipart upload; returns its upload id. Nothing is visible yet."""

        async def operation() -> str:
            response = await self.client.create_multipart_upload(
                Bucket=self.bucket, Key=key, ContentType=content_type, Metadata=metadata
            )
            return str(response["UploadId"])

        return await self._retry(operation, f"CREATE MULTIPART {key}")

    async def upload_part(self, key: str, upload_id: str, part_number: int, body: bytes) -> str:
        """Upload one part (re-sending the same part number is idempotent); its ETag."""

        async def operation() -> str:
            response = await self.client.upload_part(
                Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=part_number, Body=body
            )
            return str(response["ETag"])

        return await self._retry(operation, f"UPLOAD PART {part_number} {key}")

    async def complete_multipart_upload(
        self, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> str:
        """Make the object visible, whole, under ``key``. Raises ``ClientError``
        ``NoSuchUpload`` if the upload is gone (completed by an earlier attempt, or aborted)."""

        async def operation() -> str:
            response = await self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={
                    "Parts": [{"PartNumber": number, "ETag": etag} for number, etag in parts]
                },
            )
            return str(response.get("ETag", ""))

        return await self._retry(operation, f"COMPLETE MULTIPART {key}")

    async def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        """Drop an unfinished upload and its parts (an unknown upload is not an error)."""

        async def operation() -> None:
            try:
                await self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id
                )
            except ClientError as exc:
                if _error_code(exc) not in _NOT_FOUND:
                    raise

        await self._retry(operation, f"ABORT MULTIPART {key}")
