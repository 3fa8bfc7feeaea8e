"""Streaming multipart uploads on the real object store: a large file appears whole, and
only when complete; a failed upload leaves neither an object nor unfinished parts."""

from __future__ import annotations

import hashlib

import pytest

from services.exporter.upload import StreamingUpload
from shared.adapters.s3 import S3ObjectStore
from shared.settings import Settings

PART = 5 * 1024 * 1024
CHUNK = bytes(range(256)) * 4096  # 1 MiB


async def test_large_file_is_uploaded_in_parts(fresh_settings: Settings) -> None:
    async with S3ObjectStore(fresh_settings, fresh_settings.exports_bucket) as store:
        upload = StreamingUpload(
            store,
            "big/file.csv",
            part_size=PART,
            content_type="text/csv; charset=utf-8",
            metadata={"request-id": "r-big"},
        )
        async with upload:
            for _ in range(11):
                await upload.write(CHUNK)
            assert await store.head("big/file.csv") is None  # invisible until complete
            await upload.complete()
        assert upload.parts == 3
        stored = await store.get("big/file.csv")
        assert stored is not None
        assert hashlib.sha256(stored.body).digest() == hashlib.sha256(CHUNK * 11).digest()
        head = await store.head("big/file.csv")
        assert head is not None
        assert head.metadata["request-id"] == "r-big"
        assert head.content_type.startswith("text/csv")
        assert head.size == len(CHUNK) * 11


async def test_failed_upload_is_aborted(fresh_settings: Settings) -> None:
    async with S3ObjectStore(fresh_settings, fresh_settings.exports_bucket) as store:

        async def fail_half_way() -> None:
            async with StreamingUpload(
                store, "broken.csv", part_size=PART, content_type="text/csv", metadata={}
            ) as upload:
                for _ in range(7):
                    await upload.write(CHUNK)
                raise RuntimeError("row builder broke")

        with pytest.raises(RuntimeError, match="row builder broke"):
            await fail_half_way()
        assert await store.head("broken.csv") is None
        pending = await store.client.list_multipart_uploads(Bucket=store.bucket)
        assert not pending.get("Uploads")


async def test_small_file_is_a_single_put(fresh_settings: Settings) -> None:
    async with S3ObjectStore(fresh_settings, fresh_settings.exports_bucket) as store:
        async with StreamingUpload(
            store,
            "small.csv",
            part_size=PART,
            content_type="text/csv",
            metadata={"request-id": "r-small"},
        ) as upload:
            await upload.write(b"a,b\r\n1,2\r\n")
            await upload.complete()
        assert upload.parts == 0
        stored = await store.get("small.csv")
        assert stored is not None
        assert stored.body == b"a,b\r\n1,2\r\n"
