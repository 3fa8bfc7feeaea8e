"""Replay: rebuild chosen UTC days of the workspaces' facts from the events in the topic.

Use it after fixing a validation bug, after restoring a topic, after damage to a table,
and to move a store from an older storage format to format 3 (``docs/storage.md``, Migration:
on a store with no format-3 tables it builds them from the topic).

1. **Read.** It reads ``usage.events`` from a little before the first day (a record's
   timestamp is its produce time, and an event may be produced up to 24 h before it
   occurs) to the log end as it was at the start, with no consumer group, decodes every
   record as ingest does (``services.ingest.decode``), and spills the facts of the chosen
   days and the dimension versions to Parquet files in a work directory, per workspace.
2. **Rebuild**, one workspace at a time. Dimension versions the ``dimensions`` table does
   not hold (by ``event_id``) are appended first. Then the facts of the days ``--from`` to
   ``--to`` become: the topic's facts of those days, each ``event_id`` once (the first in
   the topic), except those whose id is already stored on a day outside the range (the
   first applied wins: it stays there), plus the stored facts of those days whose id the
   topic no longer has (a topic whose retention dropped old events loses nothing) and
   that are not stored outside the range too, each id once. They
   replace those days' partitions in ONE Delta commit (``shared.columnar.rewrite``)
   that, like every writer's commit, records ``WRITER_APP_ID``: if a live ingest commits
   to the table meanwhile, one of the two commits is refused; the loser reloads and
   recomputes (replay re-reads the stored facts, which may have gained some).

Interrupt it at any point and run the same command again: the work directory keeps how
far the read got and which workspaces are done. A workspace's days are rebuilt in memory
(its topic facts of the range and its stored facts of the range): replay a very large
workspace a few months at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from aiokafka import AIOKafkaConsumer, TopicPartition
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from services.ingest.decode import decode_batch
from services.ingest.validation import AcceptedRange
from services.ingest.worker import by_workspace
from shared import codec
from shared.adapters.kafka import make_consumer
from shared.adapters.kafka_offsets import end_offsets, offset_for_time, wait_assigned
from shared.adapters.s3 import S3ObjectStore
from shared.clock import Clock, system_clock
from shared.columnar.rewrite import append_rows, replace_days
from shared.columnar.schema import DIMENSIONS, FACTS, DimensionVersion, dimensions_table
from shared.columnar.tables import (
    DIMENSIONS_TABLE,
    FACTS_TABLE,
    TableStore,
    WorkspaceTables,
    workspace_ids,
)
from shared.domain.window import day_start_ms
from shared.errors import FencedOut
from shared.settings import Settings

log = logging.getLogger(__name__)

#: Producer clocks drift; read this much earlier than strictly needed.
CLOCK_MARGIN_MS = 60 * 60 * 1000
#: Spill sub-directories of the work directory, per table.
_SPILLS: Final = {FACTS_TABLE: FACTS, DIMENSIONS_TABLE: DIMENSIONS}


@dataclass
class ReplaySummary:
    records_read: int = 0
    invalid: int = 0
    facts_in_range: int = 0
    workspaces_rewritten: int = 0
    days_rewritten: int = 0
    facts_before: int = 0
    facts_after: int = 0
    kept_from_store: int = 0
    #: topic facts of the range whose id is stored on a day outside it (left there)
    stored_elsewhere: int = 0
    dimension_versions_added: int = 0
    conflicts: int = 0
    workspaces: list[str] = field(default_factory=list)
    days: list[str] = field(default_factory=list)


@dataclass
class Progress:
    """Callbacks for a progress display: (phase, done, total); phases "read" (records)
    and "rebuild" (workspaces)."""

    update: Callable[[str, int, int], None] = lambda phase, done, total: None


@dataclass(frozen=True, slots=True)
class _Rebuilt:
    """What one workspace's facts commit changed."""

    before: int
    after: int
    kept: int
    stored_elsewhere: int
    days: list[date]
    conflicts: int


class Replay:
    def __init__(
        self,
        settings: Settings,
        *,
        first_day: date,
        last_day: date,
        orgs: Iterable[str] = (),
        work_dir: Path,
        progress: Progress | None = None,
        clock: Clock = system_clock,
    ) -> None:
        if last_day < first_day:
            raise ValueError("--to is before --from")
        self._settings = settings
        self._clock = clock
        self._tables = TableStore.of(settings)
        self.first_day, self.last_day = first_day, last_day
        self.orgs = frozenset(orgs)
        self._progress = progress or Progress()
        self.summary = ReplaySummary()
        digest = hashlib.sha256(
            codec.dumps_sorted(
                {
                    "format": 2,
                    "topic": settings.topic_events,
                    "bucket": settings.aggregates_bucket,
                    "from": first_day.isoformat(),
                    "to": last_day.isoformat(),
                    "orgs": sorted(self.orgs),
                }
            )
        ).hexdigest()[:16]
        self.work_dir = work_dir / f"replay-{digest}"
        self._checkpoint_path = self.work_dir / "checkpoint.json"

    # ---- checkpoint ---------------------------------------------------------------------
    def _load_checkpoint(self) -> dict[str, Any]:
        if self._checkpoint_path.exists():
            loaded: dict[str, Any] = codec.loads(self._checkpoint_path.read_bytes())
            return loaded
        return {"ends": None, "positions": None, "read_done": False, "spills": 0, "orgs_done": []}

    def _save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        temporary = self._checkpoint_path.with_suffix(".tmp")
        temporary.write_bytes(codec.dumps(checkpoint))
        temporary.replace(self._checkpoint_path)

    # ---- phase 1: read the topic, spill facts and dimension versions ----------------------
    async def read_topic(self, checkpoint: dict[str, Any]) -> None:
        if _read_to_end(checkpoint):  # stopped after the last spill, before saying so
            checkpoint["read_done"] = True
            self._save_checkpoint(checkpoint)
            return
        consumer = make_consumer(self._settings, group_id=None)
        await consumer.start()
        try:
            partitions = await wait_assigned(consumer, self._settings.topic_events)
            if checkpoint["ends"] is None:
                ends = await end_offsets(consumer, partitions)
                since = (
                    day_start_ms(self.first_day)
                    - self._settings.future_tolerance_s * 1000
                    - CLOCK_MARGIN_MS
                )
                starts = {
                    tp: await offset_for_time(consumer, tp, since, ends[tp]) for tp in partitions
                }
                checkpoint["ends"] = {str(tp.partition): ends[tp] for tp in partitions}
                checkpoint["positions"] = {str(tp.partition): starts[tp] for tp in partitions}
                checkpoint["starts"] = dict(checkpoint["positions"])
                self._save_checkpoint(checkpoint)
            await self._read_until_end(consumer, partitions, checkpoint)
        finally:
            await consumer.stop()

    async def _read_until_end(
        self,
        consumer: AIOKafkaConsumer,
        partitions: list[TopicPartition],
        checkpoint: dict[str, Any],
    ) -> None:
        ends = {int(p): int(o) for p, o in checkpoint["ends"].items()}
        positions = {int(p): int(o) for p, o in checkpoint["positions"].items()}
        starts = {int(p): int(o) for p, o in checkpoint.get("starts", positions).items()}
        total = sum(ends[p] - starts[p] for p in ends)
        active = [tp for tp in partitions if positions[tp.partition] < ends[tp.partition]]
        for tp in active:
            consumer.seek(tp, positions[tp.partition])
        accepted = AcceptedRange.at(
            self._clock(), future_tolerance=timedelta(seconds=self._settings.future_tolerance_s)
        )
        self._drop_unrecorded_spills(checkpoint["spills"])
        while active:
            batch = await consumer.getmany(*active, timeout_ms=500, max_records=20_000)
            facts: dict[str, list[pa.Table]] = {}
            versions: dict[str, list[DimensionVersion]] = {}
            for tp, records in batch.items():
                end = ends[tp.partition]
                wanted = [record for record in records if record.offset < end]
                if wanted:
                    self._decode([record.value for record in wanted], accepted, facts, versions)
                    positions[tp.partition] = wanted[-1].offset + 1
                if len(wanted) < len(records):
                    positions[tp.partition] = end
            if facts or versions:
                self._spill(checkpoint["spills"], facts, versions)
                checkpoint["spills"] += 1
            checkpoint["positions"] = {str(p): o for p, o in positions.items()}
            self._save_checkpoint(checkpoint)
            active = [tp for tp in active if positions[tp.partition] < ends[tp.partition]]
            self._progress.update("read", sum(positions[p] - starts[p] for p in ends), total)
        checkpoint["read_done"] = True
        self._save_checkpoint(checkpoint)

    def _decode(
        self,
        values: list[bytes | None],
        accepted: AcceptedRange,
        facts: dict[str, list[pa.Table]],
        versions: dict[str, list[DimensionVersion]],
    ) -> None:
        self.summary.records_read += len(values)
        decoded = decode_batch(values, accepted, max_bytes=self._settings.max_event_bytes)
        self.summary.invalid += len(decoded.rejected)
        rows = decoded.facts.filter(_in_days(decoded.facts["day"], self.first_day, self.last_day))
        for org_id, selected in by_workspace(rows) if rows.num_rows else ():
            if self._wanted(org_id):
                facts.setdefault(org_id, []).append(rows.take(selected))
                self.summary.facts_in_range += len(selected)
        for _, org_id, version in decoded.dimensions:
            if self._wanted(org_id):
                versions.setdefault(org_id, []).append(version)

    def _wanted(self, org_id: str) -> bool:
        return not self.orgs or org_id in self.orgs

    def _spill_path(self, table: str, org_id: str, number: int) -> Path:
        return self.work_dir / table / org_id / f"{number:08d}.parquet"

    def _spill(
        self,
        number: int,
        facts: dict[str, list[pa.Table]],
        versions: dict[str, list[DimensionVersion]],
    ) -> None:
        """Write one read batch's rows, a file per workspace and table, numbered ``number``
        (the same number again after an interruption: the file is replaced)."""
        spills = [(FACTS_TABLE, org, pa.concat_tables(tables)) for org, tables in facts.items()]
        spills += [(DIMENSIONS_TABLE, org, dimensions_table(org, v)) for org, v in versions.items()]
        for table, org_id, rows in spills:
            path = self._spill_path(table, org_id, number)
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(".tmp")
            pq.write_table(rows, temporary)
            temporary.replace(path)

    def _drop_unrecorded_spills(self, recorded: int) -> None:
        """Remove spills numbered from ``recorded`` on: written by a run interrupted before
        its checkpoint said so, they are read again."""
        for table in _SPILLS:
            for path in (self.work_dir / table).glob("*/*"):
                if path.suffix == ".tmp" or int(path.stem) >= recorded:
                    path.unlink()

    def _spilled(self, table: str, org_id: str) -> pa.Table:
        """A workspace's spilled rows of ``table``, in topic order, each ``event_id`` once
        (the first)."""
        schema = _SPILLS[table]
        paths = sorted((self.work_dir / table / org_id).glob("*.parquet"))
        rows = [pq.read_table(path).cast(schema) for path in paths]
        return _first_per_id(pa.concat_tables(rows) if rows else schema.empty_table())

    def _spilled_orgs(self) -> set[str]:
        return {
            path.name
            for table in _SPILLS
            if (self.work_dir / table).exists()
            for path in (self.work_dir / table).iterdir()
        }

    # ---- phase 2: rebuild each workspace ----------------------------------------------------
    async def rebuild(self, checkpoint: dict[str, Any]) -> None:
        spilled = self._spilled_orgs()
        targets = sorted(spilled | await self._stored_orgs())
        done = set(checkpoint["orgs_done"])
        for index, org_id in enumerate(targets):
            if org_id not in done:
                await self._rebuild_workspace(org_id, create=org_id in spilled)
                checkpoint["orgs_done"].append(org_id)
                self._save_checkpoint(checkpoint)
            self._progress.update("rebuild", index + 1, len(targets))

    async def _stored_orgs(self) -> set[str]:
        """Workspaces with format-3 state in the bucket (those chosen with --org)."""
        if self.orgs:
            return set(self.orgs)
        async with S3ObjectStore(self._settings, self._settings.aggregates_bucket) as store:
            return set(await workspace_ids(store))

    async def _rebuild_workspace(self, org_id: str, *, create: bool) -> None:
        if create:  # e.g. a store migrating from format 1: no tables yet
            await WorkspaceTables.open(self._tables, org_id)
        added, conflicts = await asyncio.to_thread(self._apply_dimensions, org_id)
        self.summary.dimension_versions_added += added
        self.summary.conflicts += conflicts
        rebuilt = await asyncio.to_thread(self._rebuild_facts, org_id)
        if rebuilt is None:
            return
        summary = self.summary
        summary.conflicts += rebuilt.conflicts
        summary.workspaces_rewritten += 1
        summary.workspaces.append(org_id)
        summary.days_rewritten += len(rebuilt.days)
        summary.days.extend(f"{org_id}/{day.isoformat()}" for day in rebuilt.days)
        summary.facts_before += rebuilt.before
        summary.facts_after += rebuilt.after
        summary.kept_from_store += rebuilt.kept
        summary.stored_elsewhere += rebuilt.stored_elsewhere

    def _open(self, org_id: str, table: str) -> DeltaTable | None:
        try:
            uri = self._tables.uri(org_id, table)
            return DeltaTable(uri, storage_options=dict(self._tables.options))
        except TableNotFoundError:
            return None

    def _apply_dimensions(self, org_id: str) -> tuple[int, int]:
        """Append the spilled dimension versions the table does not hold; (added,
        conflicts). Blocks."""
        spilled = self._spilled(DIMENSIONS_TABLE, org_id)
        table = self._open(org_id, DIMENSIONS_TABLE) if spilled.num_rows else None
        conflicts = 0
        while table is not None:
            stored = table.to_pyarrow_dataset().to_table(columns=["event_id"]).column("event_id")
            new = spilled.filter(_not_in(spilled["event_id"], stored))
            if not new.num_rows:
                break
            try:
                append_rows(table, new)
            except FencedOut as exc:
                conflicts += 1
                log.info("%s; reloading", exc)
                table.update_incremental()
                continue
            return new.num_rows, conflicts
        return 0, conflicts

    def _rebuild_facts(self, org_id: str) -> _Rebuilt | None:
        """Replace the range's facts (see the module docstring); None when the workspace
        has no table, or when the topic has nothing of the range and the stored days hold
        each id once already (nothing would change). Blocks."""
        table = self._open(org_id, FACTS_TABLE)
        if table is None:
            return None
        topic = self._spilled(FACTS_TABLE, org_id)
        first, last = self.first_day, self.last_day
        conflicts = 0
        while True:
            ids = table.to_pyarrow_dataset().to_table(columns=["event_id", "day"])
            outside = ids.filter(pc.invert(_in_days(ids["day"], first, last)))["event_id"]
            fresh = topic.filter(_not_in(topic["event_id"], outside))
            stored = (
                table.to_pyarrow_dataset(
                    file_pruning_predicate=[("day", ">=", first), ("day", "<=", last)]
                )
                .to_table(columns=FACTS.names)
                .cast(FACTS)
            )
            kept = stored.filter(_not_in(stored["event_id"], fresh["event_id"]))
            kept = _first_per_id(kept.filter(_not_in(kept["event_id"], outside)))
            if not topic.num_rows and kept.num_rows == stored.num_rows:
                return None
            rows = pa.concat_tables([fresh, kept])
            try:
                replace_days(table, first, last, rows)
            except FencedOut as exc:
                conflicts += 1
                log.info("%s; reloading %s and rebuilding its days again", exc, org_id)
                table.update_incremental()
                continue
            days = set(stored["day"].to_pylist()) | set(rows["day"].to_pylist())
            return _Rebuilt(
                before=stored.num_rows,
                after=rows.num_rows,
                kept=kept.num_rows,
                stored_elsewhere=topic.num_rows - fresh.num_rows,
                days=sorted(days),
                conflicts=conflicts,
            )

    # ---- the whole run ------------------------------------------------------------------------
    async def run(self) -> ReplaySummary:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        checkpoint = self._load_checkpoint()
        if not checkpoint["read_done"]:
            await self.read_topic(checkpoint)
        await self.rebuild(checkpoint)
        checkpoint["finished"] = True
        self._save_checkpoint(checkpoint)
        return self.summary

    def discard_work(self) -> None:
        """Remove the work directory after a finished run."""
        for path in sorted(self.work_dir.rglob("*"), reverse=True):
            with contextlib.suppress(OSError):
                path.unlink() if path.is_file() else path.rmdir()
        with contextlib.suppress(OSError):
            self.work_dir.rmdir()


def _read_to_end(checkpoint: dict[str, Any]) -> bool:
    """Whether a saved checkpoint's positions already reach the ends it recorded."""
    ends, positions = checkpoint["ends"], checkpoint["positions"]
    if ends is None or positions is None:
        return False
    return all(int(positions[partition]) >= int(end) for partition, end in ends.items())


def _in_days(days: pa.ChunkedArray, first: date, last: date) -> pa.ChunkedArray:
    after = pc.greater_equal(days, pa.scalar(first, pa.date32()))
    return pc.and_(after, pc.less_equal(days, pa.scalar(last, pa.date32())))


def _not_in(values: pa.ChunkedArray, known: pa.ChunkedArray) -> pa.ChunkedArray:
    """Which of ``values`` are not among ``known`` (strings)."""
    if not len(values):
        return pa.chunked_array([], pa.bool_())
    return pc.invert(pc.is_in(values, value_set=known.combine_chunks()))


def _first_per_id(rows: pa.Table) -> pa.Table:
    """``rows`` with each ``event_id`` once (its first row), in their order."""
    if not rows.num_rows:
        return rows
    order = pa.array(np.arange(rows.num_rows, dtype=np.int64))
    firsts = (
        pa.table({"event_id": rows["event_id"], "row": order})
        .group_by("event_id", use_threads=False)
        .aggregate([("row", "min")])["row_min"]
    )
    if len(firsts) == rows.num_rows:
        return rows
    return rows.take(pc.take(firsts, pc.sort_indices(firsts)))
