"""Which workspaces a compactor replica tidies: its shard ``k/n`` (``USAGE_COMPACTOR_SHARD``).

Several replicas are safe without shards (every step is a Delta commit, and of two that
race one is refused) but would do the same work each; with ``n`` replicas given ``0/n``
to ``n-1/n`` each workspace is tidied by one. The hash is CRC-32 of the org id's UTF-8
bytes: the same in every process and every Python (``hash()`` is salted per process).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from shared.settings import Settings, parse_shard


@dataclass(frozen=True, slots=True)
class Shard:
    index: int = 0
    count: int = 1

    @classmethod
    def of(cls, settings: Settings) -> Shard:
        index, count = parse_shard(settings.compactor_shard)
        return cls(index, count)

    def owns(self, org_id: str) -> bool:
        return zlib.crc32(org_id.encode()) % self.count == self.index

    def select(self, org_ids: Iterable[str]) -> list[str]:
        """The workspaces of ``org_ids`` this shard tidies, in their order."""
        return [org for org in org_ids if self.owns(org)]

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"
