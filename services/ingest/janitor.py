"""Upkeep of the workspaces' tables (storage format 2), once per ``janitor_interval_s``.

For every workspace in the aggregates bucket, one pass:

- **Retention.** Facts of days older than the retention (12 months +
  ``retention_margin_days``) are deleted: one Delta commit that removes those days'
  files (no file is rewritten). Nothing the exporter may still be asked for goes.
- **Compaction.** A day's many small files (one per flush that touched the day) are
  rewritten into one (its rows read from the snapshot and written back in place of the
  day: a commit that changes no content), so a read of a day opens one file. Only days
  with at least ``COMPACT_MIN_FILES`` files are compacted.

Both commits are ``shared.columnar.rewrite.replace_days``, which records the writers'
shared app id (``WRITER_APP_ID``): of two racing janitors, or a janitor and an ingest
commit, one is refused — the janitor's waits for the next pass, ingest's refreshes and
retries. (delta-rs's own ``optimize.compact`` records no app id, and two of them from
one snapshot both commit, doubling the day: measured, so it is not used.)
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

from shared.adapters.object_store import ObjectStore
from shared.clock import Clock, system_clock
from shared.columnar.rewrite import replace_days
from shared.columnar.schema import FACTS
from shared.columnar.tables import FACTS_TABLE, ROOT, STORE_ERRORS, TableStore, facts_of
from shared.errors import FencedOut
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
        compacted = 0
        try:
            if expired:
                replace_days(table, min(expired), cutoff - timedelta(days=1), FACTS.empty_table())
            for day, files in sorted(files_per_day.items()):
                if day >= cutoff and files >= COMPACT_MIN_FILES:
                    rows = facts_of(table, day, day, None)
                    replace_days(table, day, day, rows)
                    compacted += 1
        except FencedOut as exc:  # a writer (or another janitor) committed: next pass
            log.info("janitor: %s; the rest of %s waits for the next pass", exc, org)
        vacuumed = table.vacuum(dry_run=False)
        return Sweep(1, len(expired), compacted, len(vacuumed))
