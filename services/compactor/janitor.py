"""Upkeep of the workspaces' facts tables (storage format 3): what the compactor does.

Two kinds of pass (the compactor, ``services/compactor/rounds.py``, decides when):

- **Tidying** of given workspaces (every ``compaction_interval_s``, those whose facts
  table has new commits; and every workspace in the full pass):

  - *merging a closed month*: once a UTC month is over, its day files (one per flush
    that touched the day) and any earlier month file are rewritten as one month file
    (span ``YYYY-MM``), sorted by time, so a 12-month export opens one file a month
    instead of one or more a day. Late events of a merged month land in day files again;
    they are merged in once they make ``COMPACT_MIN_FILES`` files (until then a read opens
    those few files too);
  - *compacting a day* of the current month with ``COMPACT_MIN_FILES`` files or more
    into one;
  - *rolling up* each month file that has no roll-ups yet: the users export's partials of
    its rows, its facts summed per key and its agent messages per (agent, model, user,
    conversation) (``shared.columnar.rollups``), which exports of windows covering the
    file whole read instead of its facts; then the sum of every month file's roll-ups as
    one merged roll-up of each kind, which a window covering all of those months reads
    instead.

  Both are a commit that changes no content (``shared.columnar.rewrite.rewrite_spans``):
  delta-rs refuses it when an ingest commit since its snapshot added a file to one of its
  spans (then the next round tries again), never because of files added elsewhere, so a
  busy workspace's closed months are merged while its current day is being written.
  The cost is one rewrite of each month when it closes, plus each day's compactions: it
  grows with a workspace's size, never with its history.

- **The full pass** (:meth:`Janitor.sweep`, every ``janitor_interval_s``, hourly) over
  every workspace: tidying, then

  - *retention*: facts of UTC days older than the retention (12 months +
    ``retention_margin_days``) are deleted in one commit (a month file that also holds
    newer days is rewritten without them). Nothing the exporter may still be asked for
    goes;
  - *vacuum*: data files no commit references any more (replaced by a rewrite or a
    retention delete, or orphaned by a fenced writer) are deleted once older than Delta's
    retention (7 days: longer than any read in flight or write being committed).
    Roll-ups of facts files no longer in the snapshot are deleted before.

Safe to run in several compactor replicas at once (and beside ingest): each step is a
Delta commit (or a deletion of unreferenced files), and of two that race one is refused.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from shared.adapters.object_store import ObjectStore
from shared.columnar.rewrite import replace_days, rewrite_spans, span_rows
from shared.columnar.rollups import (
    ROLLUP_KINDS,
    RollupKind,
    facts_files,
    forget,
    merge_rollups,
    open_rollups,
    pending,
    roll_up,
    rolled_up_sources,
)
from shared.columnar.schema import FACTS, SPAN
from shared.columnar.tables import (
    FACTS_TABLE,
    STORE_ERRORS,
    TableStore,
    workspace_ids,
)
from shared.errors import FencedOut
from shared.settings import Settings

log = logging.getLogger(__name__)

#: A day of the current month is compacted, and a merged month's late day files are
#: merged in, once they make this many files.
COMPACT_MIN_FILES: Final = 8
_DAY_SPAN_LENGTH: Final = len("YYYY-MM-DD")


@dataclass(frozen=True, slots=True)
class Sweep:
    """What one pass did."""

    workspaces: int = 0
    expired_files: int = 0
    compacted_days: int = 0
    merged_months: int = 0
    vacuumed_files: int = 0
    #: Workspaces whose pass a commit refused part way: tidied again next round.
    fenced: int = 0
    #: Roll-ups made: of month files, and merged ones (``shared.columnar.rollups``).
    rolled_up_files: int = 0

    def __add__(self, other: Sweep) -> Sweep:
        return Sweep(
            self.workspaces + other.workspaces,
            self.expired_files + other.expired_files,
            self.compacted_days + other.compacted_days,
            self.merged_months + other.merged_months,
            self.vacuumed_files + other.vacuumed_files,
            self.fenced + other.fenced,
            self.rolled_up_files + other.rolled_up_files,
        )


class Janitor:
    """Tidies workspaces (:meth:`tidy`) and makes full passes (:meth:`sweep`); remembers
    the workspaces whose last tidying was refused part way, and tidies them again with
    the next ones it is given."""

    def __init__(
        self,
        settings: Settings,
        store: ObjectStore,
        tables: TableStore,
    ) -> None:
        self._settings = settings
        self._store = store
        self._tables = tables
        self._unfinished: set[str] = set()  # refused part way: tidied again next round

    def cutoff(self, now: datetime) -> date:
        """The first UTC day kept."""
        kept = self._settings.retention_days + self._settings.retention_margin_days
        return (now - timedelta(days=kept)).date()

    async def sweep(
        self, now: datetime, orgs: Iterable[str] | None = None, *, stop: asyncio.Event | None = None
    ) -> Sweep:
        """The full pass over ``orgs`` (every workspace in the bucket if None) and the
        workspaces whose last round was refused part way."""
        workspaces = await workspace_ids(self._store) if orgs is None else orgs
        return await self._each(workspaces, now, full=True, stop=stop)

    async def tidy(
        self, orgs: Iterable[str], now: datetime, *, stop: asyncio.Event | None = None
    ) -> Sweep:
        """Merge closed months and compact days of ``orgs``, and of the workspaces whose
        last round was refused part way (no retention, no vacuum)."""
        return await self._each(orgs, now, full=False, stop=stop)

    async def _each(
        self, orgs: Iterable[str], now: datetime, *, full: bool, stop: asyncio.Event | None
    ) -> Sweep:
        """One workspace at a time; once ``stop`` is set, the ones not begun wait for the
        next pass (as do those after a failure, and those whose pass was refused)."""
        done = Sweep()
        wanted = sorted(self._unfinished | set(orgs))
        self._unfinished = set()
        for at, org in enumerate(wanted):
            if stop is not None and stop.is_set():
                self._unfinished.update(wanted[at:])
                break
            try:
                swept = await asyncio.to_thread(self._upkeep, org, now, full=full)
            except BaseException:  # the store failed (or we stop): the rest waits, not lost
                self._unfinished.update(wanted[at:])
                raise
            if swept.fenced:
                self._unfinished.add(org)
            done += swept
        return done

    def _upkeep(self, org: str, now: datetime, *, full: bool) -> Sweep:
        try:
            table = DeltaTable(
                self._tables.uri(org, FACTS_TABLE), storage_options=dict(self._tables.options)
            )
        except Exception:  # a workspace prefix without a facts table (yet): nothing to do
            log.debug("janitor: no facts table for %s", org, exc_info=True)
            return Sweep()
        expired = compacted = merged = fenced = rolled = 0
        options = dict(self._tables.options)
        uris = {kind: self._tables.uri(org, kind.table) for kind in ROLLUP_KINDS}
        try:
            if full:
                expired = _expire(table, self.cutoff(now))
            compacted, merged = _tidy(table, now.date())
            for kind, uri in uris.items():
                rolled += _rolled_up(org, kind, table, uri, options)
        except FencedOut as exc:  # a writer (or another janitor) committed: next round
            log.info("janitor: %s; the rest of %s waits for the next round", exc, org)
            fenced = 1
        vacuumed = 0
        if full:
            vacuumed = len(table.vacuum(dry_run=False))
            for kind, uri in uris.items():
                rollups = open_rollups(kind, uri, options, create=False)
                if rollups is not None:
                    forget(kind, rollups, facts_files(table))
                    vacuumed += len(rollups.vacuum(dry_run=False))
        return Sweep(1, expired, compacted, merged, vacuumed, fenced, rolled)


def _files(table: DeltaTable) -> pa.Table:
    return pa.table(table.get_add_actions(flatten=True))


def _expire(table: DeltaTable, cutoff: date) -> int:
    """Delete the facts of days before ``cutoff``; the number of files that held some."""
    files = _files(table)
    if not files.num_rows:
        return 0
    oldest = pc.cast(files.column("min.day"), pa.date32())
    old = pc.less(oldest, pa.scalar(cutoff, pa.date32()))
    count = pc.sum(old).as_py() or 0
    if count:
        first = pc.min(oldest).as_py()
        replace_days(table, first, cutoff - timedelta(days=1), FACTS.empty_table())
    return int(count)


@dataclass(frozen=True, slots=True)
class Rewrite:
    """One tidying step: the files of ``spans`` rewritten as one month file (``month``)
    or one day file."""

    spans: list[str]
    month: bool


def plan(files_per_span: Mapping[str, int], today: date) -> list[Rewrite]:
    """What tidying a table with these files (span -> number of files) does today: merge
    each closed month that has day files (once, then again per ``COMPACT_MIN_FILES`` late
    ones), and compact each day of the current month with ``COMPACT_MIN_FILES`` files."""
    days_by_month: dict[str, list[str]] = {}
    for span in files_per_span:
        if len(span) == _DAY_SPAN_LENGTH:
            days_by_month.setdefault(span[:7], []).append(span)
    this_month = today.isoformat()[:7]
    steps: list[Rewrite] = []
    for month, days in sorted(days_by_month.items()):
        if month < this_month:
            day_files = sum(files_per_span[day] for day in days)
            if month not in files_per_span or day_files >= COMPACT_MIN_FILES:
                spans = sorted(days) + ([month] if month in files_per_span else [])
                steps.append(Rewrite(spans, month=True))
        else:
            crowded = (day for day in sorted(days) if files_per_span[day] >= COMPACT_MIN_FILES)
            steps.extend(Rewrite([day], month=False) for day in crowded)
    return steps


def files_per_span(table: DeltaTable) -> Counter[str]:
    """How many files each span of the table's snapshot has."""
    return Counter(_files(table).column(f"partition.{SPAN}").to_pylist())


def _rolled_up(
    org: str, kind: RollupKind, facts: DeltaTable, rollups_uri: str, options: dict[str, str]
) -> int:
    """:func:`_roll_up`, whose own failures (bad data, a bug) cost only speed: exports read
    the facts of a file without a roll-up, so the janitor logs them and goes on (a store
    failure or a refused commit propagates like the other steps')."""
    try:
        return _roll_up(kind, facts, rollups_uri, options)
    except (FencedOut, *STORE_ERRORS):
        raise
    except Exception:
        log.exception("janitor: %s of %s failed; its exports read the facts", kind.table, org)
        return 0


def _roll_up(kind: RollupKind, facts: DeltaTable, rollups_uri: str, options: dict[str, str]) -> int:
    """Roll up the month files of ``facts``'s latest snapshot that have no roll-up of
    ``kind`` yet, then merge the roll-ups of all its month files into one if that merged
    roll-up does not exist yet; how many roll-ups were made."""
    facts.update_incremental()
    existing = open_rollups(kind, rollups_uri, options, create=False)
    todo = pending(facts_files(facts), rolled_up_sources(kind, existing))
    if not todo:
        return 0
    rollups = open_rollups(kind, rollups_uri, options, create=True)
    assert rollups is not None
    for file in todo.files:
        roll_up(kind, facts, rollups, file)
    if todo.merged:
        rollups.update_incremental()
        merge_rollups(kind, rollups, todo.merged)
    return len(todo.files) + bool(todo.merged)


def _tidy(table: DeltaTable, today: date) -> tuple[int, int]:
    """Merge closed months and compact crowded days; (days compacted, months merged)."""
    compacted = merged = 0
    for step in plan(files_per_span(table), today):
        rewrite_spans(table, step.spans, span_rows(table, step.spans), month=step.month)
        merged += step.month
        compacted += not step.month
    return compacted, merged
