"""Streaming uploads: one PUT for small files, multipart for large ones, abort on failure."""

from __future__ import annotations

import pytest

from services.exporter.upload import StreamingUpload
from shared.errors import UploadNotFound
from tests.unit.memory_store import MemoryStore

PART = 5 * 1024 * 1024


class FakeStore(MemoryStore):
    """The in-memory store, with a connection that breaks at one part number."""

    def __init__(self, fail_part: int | None = None) -> None:
        super().__init__()
        self.fail_part = fail_part

    async def upload_part(self, key: str, upload_id: str, part_number: int, body: bytes) -> str:
        if part_number == self.fail_part:
            raise OSError("connection reset")
        return await super().upload_part(key, upload_id, part_number, body)


def upload(store: MemoryStore) -> StreamingUpload:
    return StreamingUpload(
        store,
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
    assert list(store.objects) == ["k.csv"]
    assert store.body("k.csv") == b"a,b\r\n1,2\r\n"
    assert store.objects["k.csv"][2]["request-id"] == "r1"
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
    assert store.body("k.csv") == chunk * 12
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


class LostReply(MemoryStore):
    """Completes the upload, then answers as a retried complete would after the first
    answer was lost: the upload is gone."""

    async def complete_multipart_upload(
        self, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> str:
        await super().complete_multipart_upload(key, upload_id, parts)
        raise UploadNotFound(f"upload {upload_id} is gone", status=404, code="NoSuchUpload")


async def test_a_complete_whose_reply_was_lost_finds_its_own_object() -> None:
    store = LostReply()
    async with upload(store) as streaming:
        await streaming.write(b"x" * (PART + 1))
        await streaming.complete()
    assert store.body("k.csv") == b"x" * (PART + 1)


class AbortedMeanwhile(MemoryStore):
    """An upload aborted by someone else before its complete."""

    async def complete_multipart_upload(
        self, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> str:
        raise UploadNotFound(f"upload {upload_id} is gone", status=404, code="NoSuchUpload")


async def test_a_gone_upload_that_is_not_ours_is_an_error() -> None:
    store = AbortedMeanwhile()
    store.objects["k.csv"] = (b"older", '"9"', {"upload-nonce": "an earlier upload"})
    async with upload(store) as streaming:
        await streaming.write(b"x" * (PART + 1))
        with pytest.raises(UploadNotFound):
            await streaming.complete()
    assert store.body("k.csv") == b"older"
