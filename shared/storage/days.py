"""Storage format of one workspace-day: its in-memory state and its durable form.

Durable form (see ``shared.domain.keys``): a head object and immutable fact segments.
The head is JSON Lines: its first line is the head document (the day's aggregate and the
segments it names), the lines after it are the day's newest facts, carried *inline*
until they outgrow ``INLINE_MAX_BYTES`` and spill into a segment. So a flush of a day is
usually one PUT, the head, which is also the commit: it is conditional on the ETag we
loaded (``If-Match``, or ``If-None-Match: *`` for a new day), so a concurrent or zombie
writer cannot overwrite what it has not seen; a spill writes the segment first and then
the head that names it. Facts carry their ``event_id``; the union over a day's segments
and inline facts is that day's dedup set, so an event re-delivered or re-produced months
later changes nothing. (Schema-1 heads, plain JSON without inline facts, read the same.)
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from shared import codec
from shared.adapters.s3 import ObjectStore
from shared.domain import keys
from shared.domain.aggregate import Aggregate
from shared.domain.facts import EVENT_ID, Fact, decode_facts, encode_fact
from shared.errors import PreconditionFailed, UsageExportError

HEAD_SCHEMA = 2
#: Segments are compacted into one when a day has more than this many.
MAX_SEGMENTS = 16
#: Inline facts spill into a segment beyond this size (a few hundred facts): large
#: enough that most flushes of a day are one PUT, small enough that the heads exporters
#: read and the inline facts ingest keeps per cached day stay small.
INLINE_MAX_BYTES = 64 * 1024


def encode_head(document: dict[str, Any], aggregate: bytes, inline: bytes) -> bytes:
    """The head's bytes: ``document`` with the encoded ``aggregate`` as its last field,
    then the inline facts."""
    encoded = codec.dumps(document)
    separator = b"," if len(encoded) > 2 else b""  # "{}" has no field to follow
    return b"".join((encoded[:-1], separator, b'"aggregate":', aggregate, b"}\n", inline))


def parse_head(body: bytes) -> tuple[dict[str, Any], bytes]:
    """(head document, inline facts as NDJSON); only the document is decoded."""
    line, _, inline = body.partition(b"\n")
    document: dict[str, Any] = codec.loads(line)
    return document, inline


@dataclass
class DayState:
    org_id: str
    day: date
    etag: str | None = None  # None: the head does not exist yet
    # The aggregate is kept in two parts: what is durable, as the JSON the head holds
    # (a sixth of the memory of the objects, and the working set is every day a backlog
    # touches), and what was applied since, as objects. A write merges the two.
    durable: bytes = b""  # encoded aggregate of the head; empty for a new day
    delta: Aggregate = field(default_factory=Aggregate)
    segments: list[dict[str, Any]] = field(default_factory=list)
    inline: bytes = b""  # facts durable in the head itself (NDJSON)
    inline_facts: int = 0
    event_ids: set[str] = field(default_factory=set)
    # Applied in memory, not yet durable: each fact already encoded as its NDJSON line,
    # which is what the next write needs and a third of the memory of the tuple.
    pending: list[bytes] = field(default_factory=list)

    def apply(self, fact: Fact) -> bool:
        """Fold one fact in unless its event was seen before; True if it was new."""
        event_id = fact[EVENT_ID]
        if event_id in self.event_ids:
            return False
        self.event_ids.add(event_id)
        self.delta.add(fact)
        self.pending.append(encode_fact(fact))
        return True

    @property
    def aggregate(self) -> Aggregate:
        """The day's whole aggregate (decoded on demand, for writes and checks; read-only:
        for a day never written it is the delta itself)."""
        if not self.durable:
            return self.delta
        whole = Aggregate.from_json(codec.loads(self.durable))
        whole.merge(self.delta)
        return whole

    def pending_changes(self) -> list[Fact]:
        """The facts not yet durable (to re-apply on a reloaded state after a lost race)."""
        return decode_facts(b"".join(self.pending))

    @property
    def dirty(self) -> bool:
        return bool(self.pending)

    @property
    def weight(self) -> int:
        """A proxy for memory held: facts known for the day."""
        return len(self.event_ids)


async def load_day(store: ObjectStore, org_id: str, day: date, *, attempts: int = 5) -> DayState:
    """The day as durable in the store (empty if it was never written)."""
    state = DayState(org_id=org_id, day=day)
    head = await store.get(keys.day_head_key(org_id, day))
    if head is None:
        return state
    document, state.inline = parse_head(head.body)
    state.etag = head.etag
    state.durable = codec.dumps(document["aggregate"])
    state.segments = document["segments"]
    inline_facts = decode_facts(state.inline)
    state.inline_facts = len(inline_facts)
    state.event_ids.update(fact[EVENT_ID] for fact in inline_facts)
    stored_segments = await asyncio.gather(
        *(store.get(segment["key"]) for segment in state.segments)
    )
    for stored in stored_segments:
        if stored is None:
            # Compacted by another writer after we read the head: read it all again.
            if attempts <= 1:
                raise RuntimeError(f"day head {org_id}/{day} names a missing fact segment")
            return await load_day(store, org_id, day, attempts=attempts - 1)
        state.event_ids.update(fact[EVENT_ID] for fact in decode_facts(stored.body))
    return state


async def stored_days(store: ObjectStore, org_id: str) -> set[date]:
    """The days of a workspace that have objects in the store (one LIST)."""
    days: set[date] = set()
    for prefix in await store.list_prefixes(keys.days_prefix(org_id)):
        day = keys.parse_day_prefix(prefix)
        if day is not None:
            days.add(day)
    return days


async def read_day_facts(store: ObjectStore, org_id: str, day: date) -> list[Fact] | None:
    """Every fact of a committed day (for the partial days at an export window's ends)."""
    for _ in range(3):  # a segment may be compacted away between reading head and segment
        head = await store.get(keys.day_head_key(org_id, day))
        if head is None:
            return None
        document, inline = parse_head(head.body)
        facts: list[Fact] = []
        for segment in document["segments"]:
            stored = await store.get(segment["key"])
            if stored is None:
                break
            facts.extend(decode_facts(stored.body))
        else:
            facts.extend(decode_facts(inline))
            return facts
    raise RuntimeError(f"fact segments of {org_id}/{day} kept changing while being read")


async def write_day(store: ObjectStore, state: DayState) -> list[str]:
    """Make ``state.pending`` durable. Returns the segment keys this write superseded.

    Raises ``PreconditionFailed`` when someone else wrote the head since we loaded it:
    the caller reloads the day and re-applies its pending facts.
    """
    superseded: list[str] = []
    segments = list(state.segments)
    inline = state.inline + b"".join(state.pending)
    inline_facts = state.inline_facts + len(state.pending)
    segment_key = None
    if len(inline) > INLINE_MAX_BYTES:
        segment_key, body, facts = await _spill(store, state, segments, inline, inline_facts)
        if len(segments) >= MAX_SEGMENTS:
            superseded, segments = [segment["key"] for segment in segments], []
        segments.append({"key": segment_key, "facts": facts, "bytes": len(body)})
        inline, inline_facts = b"", 0
    head = {
        "schema": HEAD_SCHEMA,
        "org_id": state.org_id,
        "day": state.day.isoformat(),
        "write_id": uuid.uuid4().hex,  # heads never repeat a body, so ETags never repeat
        "facts": sum(segment["facts"] for segment in segments) + inline_facts,
        "inline_facts": inline_facts,
        "segments": segments,
    }
    durable = codec.dumps(state.aggregate.to_json())
    head_key = keys.day_head_key(state.org_id, state.day)
    try:
        etag = await store.put(
            head_key,
            encode_head(head, durable, inline),
            if_match=state.etag,
            if_none_match=state.etag is None,
            content_type="application/jsonl",
        )
    except PreconditionFailed:
        # Nobody can reference the segment we just wrote; a crash right here would leave
        # it for the janitor instead.
        if segment_key is not None:
            with contextlib.suppress(UsageExportError):
                await store.delete(segment_key)
        raise
    state.etag = etag
    state.segments = segments
    state.inline, state.inline_facts = inline, inline_facts
    state.durable, state.delta = durable, Aggregate()
    state.pending = []
    return superseded


async def _spill(
    store: ObjectStore,
    state: DayState,
    segments: list[dict[str, Any]],
    inline: bytes,
    inline_facts: int,
) -> tuple[str, bytes, int]:
    """Write the inline facts (with every older segment, when compacting) as a new
    segment: (its key, its bytes, its facts). Encodings concatenate, so compaction
    joins stored bodies without decoding them."""
    parts: list[bytes] = []
    facts = inline_facts
    if len(segments) >= MAX_SEGMENTS:
        for segment in segments:
            stored = await store.get(segment["key"])
            if stored is None:
                raise RuntimeError(f"missing fact segment {segment['key']}")
            parts.append(stored.body)
            facts += segment["facts"]
    parts.append(inline)
    body = b"".join(parts)
    segment_key = keys.new_facts_key(state.org_id, state.day)
    await store.put(segment_key, body, content_type="application/x-ndjson")
    return segment_key, body, facts
