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

Each segment has a companion *digest object* (``facts-{id}.ids``): the 16-byte BLAKE2b
digests of its events' ids, concatenated, written with the segment and named by the head.
A day evicted from ingest's cache and touched again (a late event) is reloaded from its
head and digest objects — a twelfth of the bytes of its facts and nothing to decode — and
its segments' ids are kept as digests, a third less memory than the ids themselves. At
128 bits two distinct ids of a day share a digest with probability ~n²/2¹²⁹: never, in
practice, for any day's n. Segments written before digest objects existed have none and
are read whole, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
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
#: Bytes of one event id's digest in a digest object.
DIGEST_BYTES = 16


def event_digest(event_id: str) -> bytes:
    """The digest a digest object holds for ``event_id`` (stable across processes)."""
    return hashlib.blake2b(event_id.encode(), digest_size=DIGEST_BYTES).digest()


def split_digests(body: bytes) -> list[bytes]:
    """The digests of a digest object."""
    if len(body) % DIGEST_BYTES:
        raise ValueError(f"a digest object of {len(body)} bytes is not whole digests")
    return [body[at : at + DIGEST_BYTES] for at in range(0, len(body), DIGEST_BYTES)]


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


_AGGREGATE_FIELD = b',"aggregate":'


def split_head(body: bytes) -> tuple[dict[str, Any], bytes, bytes]:
    """(head document without its aggregate, the aggregate's JSON, inline facts), with
    the aggregate left undecoded: what ingest keeps of a day it loads.

    ``encode_head`` writes the aggregate as the document's last field, after fields
    whose values are numbers, dates and validated ids (no quotes), so the field's first
    occurrence is the field itself. Other heads (schema 1) are decoded whole.
    """
    line, _, inline = body.partition(b"\n")
    at = line.find(_AGGREGATE_FIELD)
    if at >= 0 and line.endswith(b"}"):
        with contextlib.suppress(ValueError):  # not the layout after all
            document: dict[str, Any] = codec.loads(line[:at] + b"}")
            if document.get("schema", 1) >= HEAD_SCHEMA:
                return document, line[at + len(_AGGREGATE_FIELD) : -1], inline
    document = codec.loads(line)
    return document, codec.dumps(document.pop("aggregate")), inline


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
    event_ids: set[str] = field(default_factory=set)  # of the inline and pending facts
    sealed: set[bytes] = field(default_factory=set)  # digests of the segments' event ids
    # Applied in memory, not yet durable: each fact already encoded as its NDJSON line,
    # which is what the next write needs and a third of the memory of the tuple.
    pending: list[bytes] = field(default_factory=list)
    pending_bytes: int = 0

    def apply(self, fact: Fact) -> bool:
        """Fold one fact in unless its event was seen before; True if it was new."""
        event_id = fact[EVENT_ID]
        if self.knows(event_id):
            return False
        self.event_ids.add(event_id)
        self.delta.add(fact)
        line = encode_fact(fact)
        self.pending.append(line)
        self.pending_bytes += len(line)
        return True

    def knows(self, event_id: str) -> bool:
        """Whether the day has a fact of this event (durable or pending); a day with no
        segment digests costs no hashing."""
        return event_id in self.event_ids or (
            bool(self.sealed) and event_digest(event_id) in self.sealed
        )

    def digests(self) -> set[bytes]:
        """The digest of every event the day has a fact of."""
        return self.sealed | {event_digest(event_id) for event_id in self.event_ids}

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
        return len(self.event_ids) + len(self.sealed)

    @property
    def nbytes(self) -> int:
        """An estimate of the memory the state holds (measured on CPython 3.11: an id in
        a set ≈ 100 bytes, a digest ≈ 80; a pending fact ≈ 3 times its line, with the delta)."""
        return (
            len(self.durable)
            + len(self.inline)
            + 100 * len(self.event_ids)
            + 80 * len(self.sealed)
            + 3 * self.pending_bytes
        )


async def load_day(store: ObjectStore, org_id: str, day: date, *, attempts: int = 5) -> DayState:
    """The day as durable in the store (empty if it was never written)."""
    state = DayState(org_id=org_id, day=day)
    head = await store.get(keys.day_head_key(org_id, day))
    if head is None:
        return state
    document, state.durable, state.inline = split_head(head.body)
    state.etag = head.etag
    state.segments = document["segments"]
    inline_facts = decode_facts(state.inline)
    state.inline_facts = len(inline_facts)
    state.event_ids.update(fact[EVENT_ID] for fact in inline_facts)
    stored_segments = await asyncio.gather(
        *(store.get(segment.get("ids") or segment["key"]) for segment in state.segments)
    )
    for segment, stored in zip(state.segments, stored_segments, strict=True):
        if stored is None:
            # Compacted by another writer after we read the head: read it all again.
            if attempts <= 1:
                raise RuntimeError(f"day head {org_id}/{day} names a missing fact segment")
            return await load_day(store, org_id, day, attempts=attempts - 1)
        if "ids" in segment:
            state.sealed.update(split_digests(stored.body))
        else:  # a segment from before digest objects
            state.sealed.update(event_digest(fact[EVENT_ID]) for fact in decode_facts(stored.body))
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
    spilled: list[bytes] = []
    if len(inline) > INLINE_MAX_BYTES:
        spilled = [event_digest(event_id) for event_id in state.event_ids]
        segment_key, body, facts = await _spill(
            store, state, segments, inline, inline_facts, spilled
        )
        if len(segments) >= MAX_SEGMENTS:
            superseded = [key for segment in segments for key in _object_keys(segment)]
            segments = []
        segments.append(
            {
                "key": segment_key,
                "facts": facts,
                "bytes": len(body),
                "ids": keys.digests_key(segment_key),
            }
        )
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
                await store.delete(keys.digests_key(segment_key))
        raise
    state.etag = etag
    state.segments = segments
    state.inline, state.inline_facts = inline, inline_facts
    state.durable, state.delta = durable, Aggregate()
    state.pending, state.pending_bytes = [], 0
    if segment_key is not None:  # every id the day had as text is now in a segment
        state.sealed.update(spilled)
        state.event_ids = set()
    return superseded


def _object_keys(segment: dict[str, Any]) -> list[str]:
    """The segment's objects: its facts and, if it has one, its digest object."""
    return [segment["key"], segment["ids"]] if "ids" in segment else [segment["key"]]


async def _spill(
    store: ObjectStore,
    state: DayState,
    segments: list[dict[str, Any]],
    inline: bytes,
    inline_facts: int,
    spilled: list[bytes],
) -> tuple[str, bytes, int]:
    """Write the inline facts (with every older segment, when compacting) as a new
    segment, and its digest object: (its key, its bytes, its facts). Encodings
    concatenate, so compaction joins stored bodies without decoding them; the digests
    of the older segments are the ones the state holds."""
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
    digests = b"".join([*(state.sealed if len(segments) >= MAX_SEGMENTS else ()), *spilled])
    segment_key = keys.new_facts_key(state.org_id, state.day)
    await asyncio.gather(
        store.put(segment_key, body, content_type="application/x-ndjson"),
        store.put(keys.digests_key(segment_key), digests, content_type="application/octet-stream"),
    )
    return segment_key, body, facts
