"""An in-memory :class:`~shared.adapters.object_store.ObjectStore` with real-shaped ETags,
conditional writes and multipart uploads, counting the reads it serves. mypy checks it
against the protocol wherever a test passes it to a service."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.adapters.object_store import ListedObject, ObjectHead, ObjectStore, StoredObject
from shared.errors import PreconditionFailed, UploadNotFound


class MemoryStore:
    """Every call of :class:`ObjectStore`, in memory; ``fail`` makes the data calls raise."""

    bucket = "memory"

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str, dict[str, str]]] = {}
        # upload id -> (key, parts by number, metadata)
        self.uploads: dict[str, tuple[str, dict[int, bytes], dict[str, str]]] = {}
        self.aborted: list[str] = []
        self.signed = 0
        self.lists = 0
        self.bucket_checks = 0
        self.gets: list[str] = []
        self.fail: type[Exception] | None = None
        self._etags = 0
        self._upload_ids = 0

    def _check(self) -> None:
        if self.fail is not None:
            raise self.fail("injected failure")

    def _store(self, key: str, body: bytes, metadata: dict[str, str]) -> str:
        self._etags += 1
        etag = f'"{self._etags}"'
        self.objects[key] = (body, etag, metadata)
        return etag

    def body(self, key: str) -> bytes | None:
        found = self.objects.get(key)
        return found[0] if found else None

    def csv_keys(self) -> list[str]:
        return sorted(key for key in self.objects if key.endswith(".csv"))

    async def get(self, key: str) -> StoredObject | None:
        self._check()
        self.gets.append(key)
        found = self.objects.get(key)
        return StoredObject(body=found[0], etag=found[1]) if found else None

    async def head(self, key: str) -> ObjectHead | None:
        found = self.objects.get(key)
        if found is None:
            return None
        return ObjectHead(size=len(found[0]), etag=found[1], metadata=found[2])

    async def put(
        self,
        key: str,
        body: bytes,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
        content_type: str = "",
    ) -> str:
        self._check()
        current = self.objects.get(key)
        if (if_none_match and current) or (
            if_match is not None and (not current or current[1] != if_match)
        ):
            raise PreconditionFailed(key)
        return self._store(key, body, {})

    async def put_with_metadata(
        self, key: str, body: bytes, *, content_type: str, metadata: dict[str, str]
    ) -> str:
        self._check()
        return self._store(key, body, metadata)

    async def delete(self, key: str) -> None:
        self.objects.pop(key, None)

    async def list_objects(
        self, prefix: str, *, start_after: str | None = None
    ) -> list[ListedObject]:
        self._check()
        self.lists += 1
        return [
            ListedObject(key=key, size=len(found[0]), etag=found[1])
            for key, found in sorted(self.objects.items())
            if key.startswith(prefix) and (start_after is None or key > start_after)
        ]

    async def list_prefixes(self, prefix: str) -> list[str]:
        self._check()
        return sorted(
            {
                prefix + key[len(prefix) :].split("/", 1)[0] + "/"
                for key in self.objects
                if key.startswith(prefix) and "/" in key[len(prefix) :]
            }
        )

    async def presign_download(
        self, key: str, expires_s: int, *, filename: str | None = None
    ) -> str:
        self.signed += 1
        return f"http://127.0.0.1/{key}?signature={self.signed}&expires={expires_s}"

    async def create_multipart_upload(
        self, key: str, *, content_type: str, metadata: dict[str, str]
    ) -> str:
        self._check()
        upload_id = f"up{self._upload_ids}"
        self._upload_ids += 1
        self.uploads[upload_id] = (key, {}, metadata)
        return upload_id

    async def upload_part(self, key: str, upload_id: str, part_number: int, body: bytes) -> str:
        self._check()
        self.uploads[upload_id][1][part_number] = body
        return f'"p{part_number}"'

    async def complete_multipart_upload(
        self, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> str:
        self._check()
        if upload_id not in self.uploads:
            raise UploadNotFound(f"upload {upload_id} is gone", status=404, code="NoSuchUpload")
        _, stored, metadata = self.uploads.pop(upload_id)
        assert [number for number, _ in parts] == sorted(stored)
        return self._store(key, b"".join(stored[number] for number, _ in parts), metadata)

    async def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        self.uploads.pop(upload_id, None)
        self.aborted.append(upload_id)

    async def check_bucket(self) -> None:
        self._check()
        self.bucket_checks += 1


if TYPE_CHECKING:
    _KEEPS_THE_CONTRACT: ObjectStore = MemoryStore()  # mypy checks it even where none is passed
