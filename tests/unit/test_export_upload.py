"""Streaming uploads: one PUT for small files, multipart for large ones, abort on failure."""

from __future__ import annotations

from typing import Any, cast

import pytest

from services.exporter.upload import StreamingUpload
from shared.adapters.s3 import ObjectStore

PART = 5 * 1024 * 1024


class FakeStore:
    """The upload calls of :class:`ObjectStore`, in memory."""

    def __init__(self, fail_part: int | None = None) -> None:
        self.objects: dict[str, bytes] = {}
        self.metadata: dict[str, dict[str, str]] = {}
        self.uploads: dict[str, dict[int, bytes]] = {}
        self.aborted: list[str] = []
        self.fail_part = fail_part

    async def put_with_metadata(
        self, key: str, body: bytes, *, content_type: str, metadata: dict[str, str]
    ) -> str:
        self.objects[key] = body
        self.metadata[key] = metadata
        return '"etag"'

    async def create_multipart_upload(
        self, key: str, *, content_type: str, metadata: dict[str, str]
    ) -> str:
        upload_id = f"up{len(self.uploads)}"
        self.uploads[upload_id] = {}
        self.metadata[key] = metadata
        return upload_id

    async def upload_part(self, key: str, upload_id: str, number: int, body: bytes) -> str:
        if number == self.fail_part:
            raise OSError("connection reset")
        self.uploads[upload_id][number] = body
        return f'"p{number}"'

    async def complete_multipart_upload(
        self, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> str:
        stored = self.uploads.pop(upload_id)
        assert [number for number, _ in parts] == sorted(stored)
        self.objects[key] = b"".join(stored[number] for number, _ in parts)
        return '"whole"'

    async def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        self.uploads.pop(upload_id, None)
        self.aborted.append(upload_id)

    async def head(self, key: str) -> dict[str, Any] | None:
        return {"Metadata": self.metadata[key]} if key in self.objects else None


def upload(store: FakeStore) -> StreamingUpload:
    return StreamingUpload(
        cast(ObjectStore, store),
        "k.csv",
        part_size=PART,
        content_type="text/csv",
        metadata={"request-id": "r1"},
    )


async def test_small_file_is_one_put() -> None:
    store = FakeStore()
    async with upload(store) as streaming:
        await streaming.write(b"a,b\r\n")
        await streaming.write(b"1,2\r\n")
        await streaming.complete()
    assert store.objects == {"k.csv": b"a,b\r\n1,2\r\n"}
    assert store.metadata["k.csv"]["request-id"] == "r1"
    assert streaming.parts == 0


async def test_large_file_goes_up_in_parts_and_appears_whole() -> None:
    store = FakeStore()
    chunk = bytes(range(256)) * 4096  # 1 MiB
    async with upload(store) as streaming:
        for _ in range(12):
            await streaming.write(chunk)
            assert "k.csv" not in store.objects  # nothing visible before complete
        await streaming.complete()
    assert streaming.parts == 3  # 5 + 5 + 2 MiB
    assert store.objects["k.csv"] == chunk * 12
    assert not store.uploads


async def test_failure_aborts_and_leaves_nothing_under_the_key() -> None:
    store = FakeStore(fail_part=2)

    async def eleven_mib() -> None:
        async with upload(store) as streaming:
            for _ in range(11):
                await streaming.write(b"x" * 1024 * 1024)
            await streaming.complete()

    with pytest.raises(OSError, match="connection reset"):
        await eleven_mib()
    assert "k.csv" not in store.objects
    assert store.aborted == ["up0"]
    assert not store.uploads
