"""Retention and clean-up of the aggregates bucket.

- Days older than the retention (12 months + ``retention_margin_days``) are deleted.
- Fact segments no head names (left by a crash between writing a segment and its head)
  are deleted once older than ``ORPHAN_GRACE``, so a writer mid-commit is never raced.
Safe to run in every ingest worker at once: it only deletes what no head references.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from shared.adapters.s3 import ObjectStore
from shared.domain import keys
from shared.errors import UsageExportError
from shared.settings import Settings
from shared.storage.days import parse_head

log = logging.getLogger(__name__)

ORPHAN_GRACE = timedelta(hours=1)


class Janitor:
    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self._settings = settings
        self._store = store

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.sweep(datetime.now(UTC))
            except (UsageExportError, OSError):
                log.warning("janitor sweep failed; will retry", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._settings.janitor_interval_s)

    async def sweep(self, now: datetime) -> tuple[int, int]:
        """One pass over every workspace; returns (days deleted, orphans deleted)."""
        cutoff = (
            now
            - timedelta(days=self._settings.retention_days + self._settings.retention_margin_days)
        ).date()
        days_deleted = orphans_deleted = 0
        for org_prefix in await self._store.list_prefixes(keys.ROOT):
            for day_prefix in await self._store.list_prefixes(f"{org_prefix}days/"):
                day = keys.parse_day_prefix(day_prefix)
                if day is None:
                    continue
                if day < cutoff:
                    # Head first: a crash part-way leaves orphan segments, never a head
                    # that names missing ones.
                    expired = sorted(
                        await self._store.list_objects(day_prefix),
                        key=lambda item: not item["Key"].endswith("head.json"),
                    )
                    for item in expired:
                        await self._store.delete(item["Key"])
                    days_deleted += 1 if expired else 0
                else:
                    orphans_deleted += await self._delete_orphans(day_prefix, now)
        if days_deleted or orphans_deleted:
            log.info(
                "janitor: deleted %s expired days, %s orphan segments",
                days_deleted,
                orphans_deleted,
            )
        return days_deleted, orphans_deleted

    async def _delete_orphans(self, day_prefix: str, now: datetime) -> int:
        objects = await self._store.list_objects(day_prefix)
        segments = [item for item in objects if item["Key"].endswith(".ndjson")]
        if not segments:
            return 0
        head = await self._store.get(f"{day_prefix}head.json")
        named = (
            {segment["key"] for segment in parse_head(head.body)[0]["segments"]}
            if head is not None
            else set()
        )
        deleted = 0
        for item in segments:
            if item["Key"] not in named and now - item["LastModified"] > ORPHAN_GRACE:
                await self._store.delete(item["Key"])
                deleted += 1
        return deleted
