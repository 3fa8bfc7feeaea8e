"""Upkeep of the workspaces' tables (storage format 2), once per ``janitor_interval_s``.

For every workspace in the aggregates bucket, one pass:

- **Retention.** Facts of days older than the retention (12 months +
  ``retention_margin_days``) are deleted: one Delta commit that removes whole day
  partitions (no file is rewritten). Nothing the exporter may still be asked for goes.
- **Compaction.** A day's many small files (one per flush that touched the day) are
  rewritten into one (``optimize.compact``, a commit that changes no content), so a
  read of a day opens one file. Only days with at least ``COMPACT_MIN_FILES`` files are
  compacted; a compaction racing an ingest commit is harmless (appends and compactions
  do not conflict in Delta; a lost race is retried next pass).
- **Vacuum.** Data files no commit references any more (replaced by compaction or a
  retention delete, or orphaned by a fenced writer) are deleted once older than Delta's
  retention (7 days: longer than any read in flight or write being committed).

Safe to run in every ingest worker at once: each step is a Delta commit (or a deletion
of unreferenced files), and two that race leave the table as one of them would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Final

import pyarrow as pa
from deltalake import DeltaTable

from shared.adapters.s3 import ObjectStore
from shared.clock import Clock, system_clock
from shared.columnar.tables import FACTS_TABLE, ROOT, STORE_ERRORS, TableStore
from shared.settings import Settings

log = logging.getLogger(__name__)

#: A day is compacted once it has this many data files.
COMPACT_MIN_FILES: Final = 8


@dataclass(frozen=True, slots=True)
class Sweep:
    """What one pass did."""

    workspaces: int = 0
    expired_days: int = 0
    compacted_days: int = 0
    vacuumed_files: int = 0


class Janitor:
    def __init__(
        self,
        settings: Settings,
        store: ObjectStore,
        tables: TableStore,
        *,
        clock: Clock = system_clock,
    ) -> None:
        self._settings = settings
        self._store = store
        self._tables = tables
        self._clock = clock

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                swept = await self.sweep(self._clock())
                log.info("janitor: %s", swept)
            except STORE_ERRORS:
                log.warning("janitor sweep failed; will retry", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._settings.janitor_interval_s)

    def cutoff(self, now: datetime) -> date:
        """The first UTC day kept."""
        kept = self._settings.retention_days + self._settings.retention_margin_days
        return (now - timedelta(days=kept)).date()

    async def sweep(self, now: datetime) -> Sweep:
        """One pass over every workspace."""
        cutoff = self.cutoff(now)
        expired = compacted = vacuumed = 0
        workspaces = [
            prefix.rstrip("/").rsplit("/", 1)[-1]
            for prefix in await self._store.list_prefixes(ROOT)
        ]
        for org in workspaces:
            found = await asyncio.to_thread(self._upkeep, org, cutoff)
            expired += found.expired_days
            compacted += found.compacted_days
            vacuumed += found.vacuumed_files
        return Sweep(len(workspaces), expired, compacted, vacuumed)

    def _upkeep(self, org: str, cutoff: date) -> Sweep:
        try:
            table = DeltaTable(
                self._tables.uri(org, FACTS_TABLE), storage_options=dict(self._tables.options)
            )
        except Exception:  # a workspace prefix without a facts table (yet): nothing to do
            log.debug("janitor: no facts table for %s", org, exc_info=True)
            return Sweep()
        files = pa.table(table.get_add_actions(flatten=True))
        files_per_day: Counter[date] = Counter(files.column("partition.day").to_pylist())
        expired = [day for day in files_per_day if day < cutoff]
        if expired:
            table.delete(f"day < '{cutoff.isoformat()}'")
        compacted = 0
        for day, files in sorted(files_per_day.items()):
            if day >= cutoff and files >= COMPACT_MIN_FILES:
                table.optimize.compact(partition_filters=[("day", "=", day.isoformat())])
                compacted += 1
        vacuumed = table.vacuum(dry_run=False)
        return Sweep(1, len(expired), compacted, len(vacuumed))
