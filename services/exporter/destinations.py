"""Copies of finished exports to configured destinations (``shared.destinations``).

After the file and its manifest are in the exports bucket, and before the completion is
published, a request that names a ``destination`` has its file copied to
``{prefix}/{type}/{period}/{filename}`` in that destination's bucket, with that
destination's own credentials. The copy is idempotent: an object already there with the
file's SHA-256 (user metadata) is left alone, anything else is overwritten with the same
bytes, so a retried or re-published request never leaves a second or a different copy.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from shared.adapters.object_store import ObjectStore
from shared.adapters.s3 import S3ObjectStore
from shared.destinations import Destination
from shared.lifecycle import started
from shared.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DestinationCopy:
    """One export's file, as a destination receives it."""

    data_type: str
    period: str
    filename: str
    data: bytes
    sha256: str
    content_type: str


class DestinationCopier:
    """One destination: its configuration and a store client holding its credentials."""

    def __init__(self, destination: Destination, store: ObjectStore) -> None:
        self.destination = destination
        self._store = store

    async def copy_needed(self, key: str, sha256: str) -> bool:
        """Whether ``key`` lacks the file of ``sha256`` (missing, or other bytes)."""
        head = await self._store.head(key)
        return head is None or head.metadata.get("sha256") != sha256

    async def copy(self, file: DestinationCopy) -> str:
        """Put ``file`` in the destination (unless the same bytes are there); its key.
        Raises the store's errors (``StoreUnavailable``, ``StoreRefused``)."""
        key = self.destination.object_key(file.data_type, file.period, file.filename)
        if not await self.copy_needed(key, file.sha256):
            return key
        await self._store.put_with_metadata(
            key, file.data, content_type=file.content_type, metadata={"sha256": file.sha256}
        )
        log.info("copied %s to destination %s as %s", file.filename, self.destination.name, key)
        return key


async def open_copiers(
    stack: contextlib.AsyncExitStack, settings: Settings, destinations: Mapping[str, Destination]
) -> dict[str, DestinationCopier]:
    """A started copier per destination, closed with ``stack``."""
    copiers: dict[str, DestinationCopier] = {}
    for name, destination in destinations.items():
        store = await started(
            stack, S3ObjectStore(destination.store_settings(settings), destination.bucket)
        )
        copiers[name] = DestinationCopier(destination, store)
    return copiers
