"""An in-memory stand-in for :class:`~shared.adapters.s3.ObjectStore` with real-shaped
ETags and conditional writes, counting the reads it serves."""

from __future__ import annotations

from typing import Any

from shared.adapters.s3 import StoredObject
from shared.errors import PreconditionFailed


class MemoryStore:
    """The calls of :class:`ObjectStore` the exporter and storage use, in memory."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str, dict[str, str]]] = {}
        self.uploads: dict[str, tuple[str, dict[int, bytes], dict[str, str]]] = {}
        self.signed = 0
        self.lists = 0
        self.gets: list[str] = []
        self.fail: type[Exception] | None = None
        self._etags = 0

    def _check(self) -> None:
        if self.fail is not None:
            raise self.fail("injected failure")

    def _store(self, key: str, body: bytes, metadata: dict[str, str]) -> str:
        self._etags += 1
        etag = f'"{self._etags}"'
        self.objects[key] = (body, etag, metadata)
        return etag

    async def get(self, key: str) -> StoredObject | None:
        self._check()
        self.gets.append(key)
        found = self.objects.get(key)
        return StoredObject(body=found[0], etag=found[1]) if found else None

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

    async def head(self, key: str) -> dict[str, Any] | None:
        found = self.objects.get(key)
        return {"ContentLength": len(found[0]), "Metadata": found[2]} if found else None

    async def delete(self, key: str) -> None:
        self.objects.pop(key, None)

    async def list_objects(self, prefix: str) -> list[dict[str, Any]]:
        self._check()
        self.lists += 1
        return [
            {"Key": key, "ETag": found[1], "Size": len(found[0])}
            for key, found in sorted(self.objects.items())
            if key.startswith(prefix)
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

    def csv_keys(self) -> list[str]:
        return sorted(key for key in self.objects if key.endswith(".csv"))
