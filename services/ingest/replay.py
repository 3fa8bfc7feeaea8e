"""Replay: recompute the aggregates of chosen days from the events still in the topic.

Use it after fixing a fold or validation bug, or after restoring a topic. It reads
``usage.events`` from a little before the first day (a record's timestamp is its
produce time, and an event may be produced up to 24 h before it occurs) to the log end
as it was at the start, spills each (workspace, UTC day)'s facts to a work directory,
then rebuilds each day: the topic's facts, plus stored facts the topic no longer has
(so a topic whose retention dropped old events loses nothing), each ``event_id`` once,
folded afresh. The new day is written with the same ``If-Match`` fencing as ingest, so
a live ingest worker and a replay never lose each other's writes: whoever loses the
race reloads and re-applies. Dimension events seen on the way are applied too (they
dedup by ``event_id``).

Interrupt it at any point and run the same command again: the work directory keeps
how far the read got and which days are done.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, cast

from aiokafka import AIOKafkaConsumer, TopicPartition

from services.ingest.validation import AcceptedRange, Rejected, read_record
from shared import codec
from shared.adapters.kafka_offsets import end_offsets, offset_for_time, wait_assigned
from shared.adapters.s3 import ObjectStore
from shared.clock import Clock, system_clock
from shared.domain import keys
from shared.domain.dimensions import DimensionEvent, dimension_update, occurred_ms
from shared.domain.facts import EVENT_ID, TS, Fact, decode_facts, encode_facts
from shared.domain.window import day_start_ms, utc_day_of
from shared.errors import PreconditionFailed
from shared.settings import Settings
from shared.storage.days import DayState, load_day, read_day_facts, stored_days, write_day
from shared.storage.dims import load_dims, write_dims

log = logging.getLogger(__name__)

#: Producer clocks drift; read this much earlier than strictly needed.
CLOCK_MARGIN_MS = 60 * 60 * 1000


@dataclass
class ReplaySummary:
    records_read: int = 0
    invalid: int = 0
    facts_in_range: int = 0
    days_rewritten: int = 0
    facts_before: int = 0
    facts_after: int = 0
    kept_from_store: int = 0
    dimension_versions_added: int = 0
    conflicts: int = 0
    days: list[str] = field(default_factory=list)


@dataclass
class Progress:
    """Callbacks for a progress display: (phase, done, total)."""

    update: Callable[[str, int, int], None] = lambda phase, done, total: None


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
        self.first_day, self.last_day = first_day, last_day
        self.orgs = frozenset(orgs)
        self._progress = progress or Progress()
        self.summary = ReplaySummary()
        digest = hashlib.sha256(
            codec.dumps_sorted(
                {
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
        return {"ends": None, "positions": None, "read_done": False, "days_done": []}

    def _save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        temporary = self._checkpoint_path.with_suffix(".tmp")
        temporary.write_bytes(codec.dumps(checkpoint))
        temporary.replace(self._checkpoint_path)

    def _in_range(self, org_id: str, day: date) -> bool:
        return self.first_day <= day <= self.last_day and (not self.orgs or org_id in self.orgs)

    # ---- phase 1: read the topic, spill facts per day -------------------------------------
    async def read_topic(self, checkpoint: dict[str, Any]) -> None:
        if _read_to_end(checkpoint):  # stopped after the last spill, before saying so
            checkpoint["read_done"] = True
            self._save_checkpoint(checkpoint)
            return
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap,
            group_id=None,
            enable_auto_commit=False,
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
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
        (self.work_dir / "facts").mkdir(parents=True, exist_ok=True)
        while active:
            batch = await consumer.getmany(*active, timeout_ms=500, max_records=20_000)
            spill: dict[tuple[str, date], list[Fact]] = {}
            dims: list[list[Any]] = []
            for tp, records in batch.items():
                end = ends[tp.partition]
                for record in records:
                    if record.offset >= end:
                        break
                    self.summary.records_read += 1
                    self._classify(record.value, accepted, spill, dims)
                    positions[tp.partition] = record.offset + 1
            self._spill(spill, dims)
            checkpoint["positions"] = {str(p): o for p, o in positions.items()}
            self._save_checkpoint(checkpoint)
            active = [tp for tp in active if positions[tp.partition] < ends[tp.partition]]
            self._progress.update("read", sum(positions[p] - starts[p] for p in ends), total)
        checkpoint["read_done"] = True
        self._save_checkpoint(checkpoint)

    def _classify(
        self,
        value: bytes | None,
        accepted: AcceptedRange,
        spill: dict[tuple[str, date], list[Fact]],
        dims: list[list[Any]],
    ) -> None:
        result = read_record(value, accepted, max_bytes=self._settings.max_event_bytes)
        if type(result) is tuple:
            org_id, fact = result
            day = utc_day_of(fact[TS])
            if self._in_range(org_id, day):
                spill.setdefault((org_id, day), []).append(fact)
                self.summary.facts_in_range += 1
        elif isinstance(result, Rejected):
            self.summary.invalid += 1
        else:
            dimension = cast(DimensionEvent, result)
            if self.orgs and dimension.org_id not in self.orgs:
                return
            kind, entity, attributes = dimension_update(dimension)
            occurred = occurred_ms(dimension)
            dims.append([dimension.org_id, kind, entity, occurred, dimension.event_id, attributes])

    def _spill(self, spill: dict[tuple[str, date], list[Fact]], dims: list[list[Any]]) -> None:
        for (org_id, day), facts in spill.items():
            path = self.work_dir / "facts" / org_id / f"{day.isoformat()}.ndjson"
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("ab") as out:
                out.write(encode_facts(facts))
        if dims:
            with (self.work_dir / "dims.ndjson").open("ab") as out:
                out.write(b"".join(codec.dumps(update) + b"\n" for update in dims))

    # ---- phase 2: rebuild each day ----------------------------------------------------------
    async def rebuild(self, store: ObjectStore, checkpoint: dict[str, Any]) -> None:
        targets = sorted(await self._target_days(store))
        done = set(checkpoint["days_done"])
        for index, (org_id, day) in enumerate(targets):
            tag = f"{org_id}/{day.isoformat()}"
            if tag not in done:
                await self._rebuild_day(store, org_id, day)
                checkpoint["days_done"].append(tag)
                self._save_checkpoint(checkpoint)
            self._progress.update("rebuild", index + 1, len(targets))
        await self._apply_dimensions(store)

    async def _target_days(self, store: ObjectStore) -> set[tuple[str, date]]:
        targets: set[tuple[str, date]] = set()
        facts_dir = self.work_dir / "facts"
        if facts_dir.exists():
            for path in facts_dir.glob("*/*.ndjson"):
                targets.add((path.parent.name, date.fromisoformat(path.stem)))
        orgs = self.orgs or {
            prefix.rstrip("/").rsplit("/", 1)[-1] for prefix in await store.list_prefixes(keys.ROOT)
        }
        for org_id in orgs:
            for day in await stored_days(store, org_id):
                if self._in_range(org_id, day):
                    targets.add((org_id, day))
        return targets

    async def _rebuild_day(self, store: ObjectStore, org_id: str, day: date) -> None:
        path = self.work_dir / "facts" / org_id / f"{day.isoformat()}.ndjson"
        from_topic: dict[str, Fact] = {}
        if path.exists():
            for fact in decode_facts(path.read_bytes()):
                from_topic.setdefault(fact[EVENT_ID], fact)
        while True:
            current = await load_day(store, org_id, day)
            stored = await read_day_facts(store, org_id, day) or []
            kept = [fact for fact in stored if fact[EVENT_ID] not in from_topic]
            facts = [*from_topic.values(), *kept]
            rebuilt = DayState(org_id=org_id, day=day, etag=current.etag)
            for fact in facts:
                rebuilt.apply(fact)
            rebuilt.segments = []  # one fresh segment replaces the old ones
            try:
                await write_day(store, rebuilt)
            except PreconditionFailed:
                self.summary.conflicts += 1
                continue  # ingest wrote meanwhile: rebuild on top of its write
            break
        self.summary.days_rewritten += 1
        self.summary.facts_before += len(stored)
        self.summary.facts_after += len(facts)
        self.summary.kept_from_store += len(kept)
        self.summary.days.append(f"{org_id}/{day.isoformat()}")

    async def _apply_dimensions(self, store: ObjectStore) -> None:
        path = self.work_dir / "dims.ndjson"
        if not path.exists():
            return
        grouped: dict[tuple[str, str], list[list[Any]]] = {}
        for line in path.read_bytes().splitlines():
            org_id, kind, entity, occurred, event_id, attributes = codec.loads(line)
            grouped.setdefault((org_id, kind), []).append([entity, occurred, event_id, attributes])
        for (org_id, kind), updates in grouped.items():
            while True:
                state = await load_dims(store, org_id, kind)
                added = sum(state.apply(tuple(update)) for update in updates)
                if not added:
                    break
                try:
                    await write_dims(store, state)
                except PreconditionFailed:
                    self.summary.conflicts += 1
                    continue
                self.summary.dimension_versions_added += added
                break

    # ---- the whole run ------------------------------------------------------------------------
    async def run(self) -> ReplaySummary:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        checkpoint = self._load_checkpoint()
        if not checkpoint["read_done"]:
            await self.read_topic(checkpoint)
        async with ObjectStore(self._settings, self._settings.aggregates_bucket) as store:
            await self.rebuild(store, checkpoint)
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
