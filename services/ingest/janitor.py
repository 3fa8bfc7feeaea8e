"""Retention and clean-up of the aggregates bucket.

- Days older than the retention (12 months + ``retention_margin_days``) are deleted.
- Fact segments and digest objects no head names (left by a crash between writing a
  segment and its head, or by a replay that rewrote the day) are deleted once older
  than ``ORPHAN_GRACE``, so a writer mid-commit is never raced.
- Month rollups (the exporter's cache, ``shared.storage.rollups``) are deleted once every
  day of their month is past retention, and once their month has no day head left
  (older than ``ORPHAN_GRACE``): either way no export could use them any more.
Safe to run in every ingest worker at once: it only deletes what no head references,
and rollups are only ever a cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from shared.adapters.s3 import ObjectStore
from shared.clock import Clock, system_clock
from shared.domain import keys
from shared.domain.window_plan import days_of_month
from shared.errors import UsageExportError
from shared.settings import Settings
from shared.storage.days import parse_head

log = logging.getLogger(__name__)

ORPHAN_GRACE = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Sweep:
    """What one pass deleted."""

    days: int = 0  # expired days
    orphans: int = 0  # fact segments no head names
    rollups: int = 0  # month rollups of expired or emptied months


class Janitor:
    def __init__(
        self, settings: Settings, store: ObjectStore, *, clock: Clock = system_clock
    ) -> None:
        self._settings = settings
        self._store = store
        self._clock = clock

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.sweep(self._clock())
            except (UsageExportError, OSError):
                log.warning("janitor sweep failed; will retry", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._settings.janitor_interval_s)

    async def sweep(self, now: datetime) -> Sweep:
        """One pass over every workspace."""
        cutoff = (
            now
            - timedelta(days=self._settings.retention_days + self._settings.retention_margin_days)
        ).date()
        days_deleted = orphans_deleted = rollups_deleted = 0
        for org_prefix in await self._store.list_prefixes(keys.ROOT):
            # Days first: a month whose last head just expired loses its rollups below.
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
            rollups_deleted += await self._delete_rollups(org_prefix, cutoff, now)
        if days_deleted or orphans_deleted or rollups_deleted:
            log.info(
                "janitor: deleted %s expired days, %s orphan segments, %s month rollups",
                days_deleted,
                orphans_deleted,
                rollups_deleted,
            )
        return Sweep(days=days_deleted, orphans=orphans_deleted, rollups=rollups_deleted)

    async def _delete_rollups(self, org_prefix: str, cutoff: date, now: datetime) -> int:
        """Rollups of months wholly past retention, or whose month has no head left."""
        deleted = 0
        for month_prefix in await self._store.list_prefixes(f"{org_prefix}months/"):
            month = keys.parse_month_prefix(month_prefix)
            if month is None:
                continue  # not a layout we know: leave it alone
            rollups = await self._store.list_objects(month_prefix)
            if days_of_month(month)[-1] >= cutoff:
                listed = await self._store.list_objects(f"{org_prefix}days/{month:%Y-%m}-")
                if any(keys.parse_day_head_key(str(item["Key"])) for item in listed):
                    continue
                # No head left: an orphan, unless an exporter is writing it right now.
                rollups = [item for item in rollups if now - item["LastModified"] > ORPHAN_GRACE]
            for item in rollups:
                await self._store.delete(str(item["Key"]))
                deleted += 1
        return deleted

    async def _delete_orphans(self, day_prefix: str, now: datetime) -> int:
        objects = await self._store.list_objects(day_prefix)
        segments = [item for item in objects if item["Key"].endswith((".ndjson", ".ids"))]
        if not segments:
            return 0
        head = await self._store.get(f"{day_prefix}head.json")
        named = {
            key
            for segment in (parse_head(head.body)[0]["segments"] if head is not None else [])
            for key in (segment["key"], segment.get("ids"))
        }
        deleted = 0
        for item in segments:
            if item["Key"] not in named and now - item["LastModified"] > ORPHAN_GRACE:
                await self._store.delete(item["Key"])
                deleted += 1
        return deleted
