"""The object store on aioboto3: :class:`S3ObjectStore`, the implementation of
:class:`~shared.adapters.object_store.ObjectStore`, with retries and conditional writes.

Every call is retried on transient failures (connection errors, timeouts, 5xx, throttling)
with jittered exponential backoff; after ``s3_max_attempts`` it raises
:class:`StoreUnavailable` (retriable) so the caller decides whether to wait longer.
Conditional writes (``If-Match`` / ``If-None-Match: *``) fence concurrent writers: a lost
race (412, 409, or 404 for an ``If-Match`` on a key deleted since) raises
:class:`PreconditionFailed`. Any other refusal (403, 400, ...) raises
:class:`StoreRefused` at once, with the status and the store's error code: no botocore or
aiohttp exception leaves this module.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Self, TypeVar

import aioboto3
import aiohttp
from aiobotocore.config import AioConfig
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from pydantic import SecretStr

from shared.adapters.object_store import ListedObject, ObjectHead, StoredObject
from shared.errors import (
    PreconditionFailed,
    StoreRefused,
    StoreUnavailable,
    UploadNotFound,
    UsageExportError,
)
from shared.retry import Failure, retry, store_backoff
from shared.settings import Settings

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import PutObjectRequestTypeDef

T = TypeVar("T")
log = logging.getLogger(__name__)

_NOT_FOUND = {"NoSuchKey", "404", "NotFound", "NoSuchUpload"}
_PRECONDITION = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}
_NO_CREDENTIALS = (
    "no S3 credentials: set USAGE_S3_ACCESS_KEY and USAGE_S3_SECRET_KEY, or give the process "
    "an identity of the default AWS chain (AWS_* variables, web identity, instance profile)"
)
_TRANSIENT_STATUS = {500, 502, 503, 504, 429}
_TRANSIENT_CODES = {
    "SlowDown",
    "InternalError",
    "ServiceUnavailable",
    "RequestTimeout",
    "RequestTimeTooSkewed",
}


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, NoCredentialsError):  # a setting: retrying cannot find keys
        return False
    if isinstance(exc, ClientError):
        return _status(exc) in _TRANSIENT_STATUS or _error_code(exc) in _TRANSIENT_CODES
    return isinstance(exc, BotoCoreError | aiohttp.ClientError | OSError | TimeoutError)


def _is_not_found(exc: ClientError) -> bool:
    return _error_code(exc) in _NOT_FOUND or _status(exc) == 404


def plain(secret: SecretStr | None) -> str | None:
    """A key for botocore: None lets it use its default chain (AWS_* variables, web
    identity such as IRSA, container or instance profile) when the pair is unset."""
    return None if secret is None else secret.get_secret_value()


def _refused(exc: ClientError, what: str) -> StoreRefused:
    message = str(exc.response.get("Error", {}).get("Message", ""))
    status, code = _status(exc), _error_code(exc)
    detail = f"{what}: HTTP {status} {code} {message}".rstrip()
    return StoreRefused(detail, status=status, code=code)


class S3ObjectStore:
    """One bucket of the S3-compatible store. ``async with S3ObjectStore(...)`` or start/stop."""

    def __init__(self, settings: Settings, bucket: str, *, max_attempts: int | None = None) -> None:
        self._settings = settings
        self._bucket = bucket
        self._max_attempts = max_attempts or settings.s3_max_attempts
        self._session = aioboto3.Session()
        self._clients: contextlib.AsyncExitStack | None = None
        self._client: S3Client | None = None
        self._presigner: S3Client | None = None

    @property
    def bucket(self) -> str:
        return self._bucket

    # ---- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        if self._clients is not None:
            return
        s = self._settings
        config = AioConfig(
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=s.s3_connect_timeout_s,
            read_timeout=s.s3_read_timeout_s,
            s3={"addressing_style": "path"},
            signature_version="s3v4",
            max_pool_connections=max(32, s.ingest_flush_concurrency * 2),
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        clients = contextlib.AsyncExitStack()

        async def open_client(
            endpoint: str, access_key: SecretStr | None, secret_key: SecretStr | None
        ) -> S3Client:
            # Not shared.embedded.s3client's: that one probes a booting store (short
            # timeouts, no pool); this one carries the services' timeouts and pool.
            return await clients.enter_async_context(
                self._session.client(
                    "s3",
                    endpoint_url=endpoint,
                    region_name=s.s3_region,
                    config=config,
                    aws_access_key_id=plain(access_key),
                    aws_secret_access_key=plain(secret_key),
                )
            )

        try:
            self._client = await open_client(s.s3_endpoint, s.s3_access_key, s.s3_secret_key)
            if s.s3_presign_access_key is not None or s.s3_presign_endpoint is not None:
                # Download URLs carry the read-only identity's signature, never the main
                # one's, and name the host their users reach: SigV4 signs it, so the URL
                # is signed by a client of that endpoint (it never sends a request).
                presign_keys = (
                    (s.s3_presign_access_key, s.s3_presign_secret_key)
                    if s.s3_presign_access_key is not None
                    else (s.s3_access_key, s.s3_secret_key)
                )
                self._presigner = await open_client(
                    s.s3_presign_endpoint or s.s3_endpoint, *presign_keys
                )
        except BaseException:
            self._client = self._presigner = None
            await clients.aclose()
            raise
        self._clients = clients

    async def stop(self) -> None:
        if self._clients is not None:
            clients, self._clients = self._clients, None
            self._client = self._presigner = None
            await clients.aclose()  # the presigner first, then the main client

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def client(self) -> S3Client:
        """The started aioboto3 client (tests and tools; the services use the methods)."""
        if self._client is None:
            raise RuntimeError("S3ObjectStore is not started")
        return self._client

    # ---- retry and errors -------------------------------------------------------------
    async def _retry(
        self, operation: Callable[[], Awaitable[T]], what: str, *, attempts: int | None = None
    ) -> T:
        """``operation`` with the store's retries; whatever fails leaves as a project error."""
        backoff = replace(
            store_backoff(self._settings), jitter=True, attempts=attempts or self._max_attempts
        )

        def inform(failure: Failure) -> None:
            tries = f"{failure.attempt}/{backoff.attempts}"
            log.info("%s failed (attempt %s): %s", what, tries, failure.error)

        try:
            return await retry(operation, backoff, retriable=_is_transient, on_retry=inform)
        except UsageExportError:
            raise  # already the project's (not found, lost race) from the operation
        except NoCredentialsError as exc:
            raise StoreRefused(f"{what}: {_NO_CREDENTIALS}") from exc
        except ClientError as exc:
            if _is_transient(exc):  # the last try failed too
                raise StoreUnavailable(f"{what}: {exc}") from exc
            raise _refused(exc, what) from exc
        except (BotoCoreError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"{what}: {exc}") from exc

    # ---- objects ----------------------------------------------------------------------
    async def get(self, key: str) -> StoredObject | None:
        async def operation() -> StoredObject | None:
            try:
                response = await self.client.get_object(Bucket=self._bucket, Key=key)
            except ClientError as exc:
                if _error_code(exc) in _NOT_FOUND:  # a missing bucket is not a missing key
                    return None
                raise
            async with response["Body"] as stream:
                body = await stream.read()
            return StoredObject(body=body, etag=response["ETag"])

        return await self._retry(operation, f"GET {key}")

    async def head(self, key: str) -> ObjectHead | None:
        async def operation() -> ObjectHead | None:
            try:
                response = await self.client.head_object(Bucket=self._bucket, Key=key)
            except ClientError as exc:
                if _is_not_found(exc):
                    return None
                raise
            return ObjectHead(
                size=response.get("ContentLength", 0),
                etag=response.get("ETag", ""),
                content_type=response.get("ContentType", ""),
                metadata=dict(response.get("Metadata", {})),
            )

        return await self._retry(operation, f"HEAD {key}")

    async def put(
        self,
        key: str,
        body: bytes,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
        content_type: str = "application/json",
    ) -> str:
        request: PutObjectRequestTypeDef = {
            "Bucket": self._bucket,
            "Key": key,
            "Body": body,
            "ContentType": content_type,
        }
        if if_match is not None:
            request["IfMatch"] = if_match
        elif if_none_match:
            request["IfNoneMatch"] = "*"
        conditional = if_match is not None or if_none_match

        async def operation() -> str:
            try:
                response = await self.client.put_object(**request)
            except ClientError as exc:
                # AWS answers an If-Match PUT on a key deleted since it was read with 404:
                # the same lost race as a 412 (the version read is gone).
                if conditional and (
                    _error_code(exc) in _PRECONDITION
                    or _status(exc) in {409, 412}
                    or (if_match is not None and _is_not_found(exc))
                ):
                    raise PreconditionFailed(f"conditional PUT {key} lost a race") from exc
                raise
            return str(response["ETag"])

        return await self._retry(operation, f"PUT {key}")

    async def put_with_metadata(
        self, key: str, body: bytes, *, content_type: str, metadata: dict[str, str]
    ) -> str:
        async def operation() -> str:
            response = await self.client.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                Metadata=metadata,
            )
            return str(response["ETag"])

        return await self._retry(operation, f"PUT {key}")

    async def delete(self, key: str) -> None:
        async def operation() -> None:
            await self.client.delete_object(Bucket=self._bucket, Key=key)

        await self._retry(operation, f"DELETE {key}")

    # ---- listing ----------------------------------------------------------------------
    async def list_prefixes(self, prefix: str) -> list[str]:
        found: list[str] = []
        async for page in self._pages(prefix, delimiter="/"):
            found.extend(entry["Prefix"] for entry in page.get("CommonPrefixes", []))
        return found

    async def list_objects(
        self, prefix: str, *, start_after: str | None = None
    ) -> list[ListedObject]:
        found: list[ListedObject] = []
        async for page in self._pages(prefix, delimiter=None, start_after=start_after):
            found.extend(
                ListedObject(key=entry["Key"], size=entry["Size"], etag=entry.get("ETag", ""))
                for entry in page.get("Contents", [])
            )
        return found

    async def _pages(
        self, prefix: str, delimiter: str | None, *, start_after: str | None = None
    ) -> AsyncIterator[Any]:
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self._bucket, "Prefix": prefix}
            if delimiter:
                kwargs["Delimiter"] = delimiter
            if start_after:  # kept on every page: S3 ignores it once a token is given
                kwargs["StartAfter"] = start_after
            if token:
                kwargs["ContinuationToken"] = token

            async def operation(kw: dict[str, Any] = kwargs) -> Any:
                return await self.client.list_objects_v2(**kw)

            page = await self._retry(operation, f"LIST {prefix}")
            yield page
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")

    # ---- download links ---------------------------------------------------------------
    async def presign_download(
        self, key: str, expires_s: int, *, filename: str | None = None
    ) -> str:
        params: dict[str, Any] = {"Bucket": self._bucket, "Key": key}
        if filename:
            params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
        signer = self._presigner if self._presigner is not None else self.client
        try:  # signed locally: a failure here is a setting, never worth retrying
            url: str = await signer.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=expires_s
            )
        except ClientError as exc:
            raise _refused(exc, f"PRESIGN {key}") from exc
        except NoCredentialsError as exc:
            raise StoreRefused(f"PRESIGN {key}: {_NO_CREDENTIALS}") from exc
        except BotoCoreError as exc:
            raise StoreRefused(f"PRESIGN {key}: {exc}") from exc
        return url

    # ---- multipart uploads (the exporter's streamed files) ----------------------------
    async def create_multipart_upload(
        self, key: str, *, content_type: str, metadata: dict[str, str]
    ) -> str:
        async def operation() -> str:
            response = await self.client.create_multipart_upload(
                Bucket=self._bucket, Key=key, ContentType=content_type, Metadata=metadata
            )
            return str(response["UploadId"])

        return await self._retry(operation, f"CREATE MULTIPART {key}")

    async def upload_part(self, key: str, upload_id: str, part_number: int, body: bytes) -> str:
        async def operation() -> str:
            response = await self.client.upload_part(
                Bucket=self._bucket, Key=key, UploadId=upload_id, PartNumber=part_number, Body=body
            )
            return str(response["ETag"])

        return await self._retry(operation, f"UPLOAD PART {part_number} {key}")

    async def complete_multipart_upload(
        self, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> str:
        what = f"COMPLETE MULTIPART {key}"

        async def operation() -> str:
            try:
                response = await self.client.complete_multipart_upload(
                    Bucket=self._bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={
                        "Parts": [{"PartNumber": number, "ETag": etag} for number, etag in parts]
                    },
                )
            except ClientError as exc:
                if _is_not_found(exc):
                    gone = f"{what}: upload {upload_id} is gone"
                    raise UploadNotFound(gone, status=_status(exc), code=_error_code(exc)) from exc
                raise
            return str(response.get("ETag", ""))

        return await self._retry(operation, what)

    async def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        async def operation() -> None:
            try:
                await self.client.abort_multipart_upload(
                    Bucket=self._bucket, Key=key, UploadId=upload_id
                )
            except ClientError as exc:
                if _error_code(exc) not in _NOT_FOUND:
                    raise

        await self._retry(operation, f"ABORT MULTIPART {key}")

    # ---- readiness --------------------------------------------------------------------
    async def check_bucket(self) -> None:
        async def operation() -> None:
            await self.client.head_bucket(Bucket=self._bucket)

        await self._retry(operation, f"HEAD BUCKET {self._bucket}", attempts=1)
