"""Month rollups: a month's day aggregates merged, one object per aggregate part.

A rollup is a cache, never a source of truth. Its header names the day heads it
summarizes — day → head ETag, exactly as the head was when it was read — and a reader
uses it only when one LIST of the month's day keys shows exactly those heads with exactly
those ETags. A late event rewrites a head (every head write carries a new ``write_id``,
so its ETag changes), a new day appears, or the janitor expires one: the manifest no
longer matches and the rollup is ignored. A rollup for another workspace, month or part,
of another schema, or whose body does not hash to what its header says, is ignored too.
So a rollup that was never written, is half written or is out of date costs a rebuild
from the day heads, never a wrong count.

Layout (``shared.domain.keys.month_rollup_key``): two lines, a small JSON header then the
part's JSON body, so a stale rollup is rejected without decoding its body.

Writes are unconditional and best effort: two builders of one month write documents that
each describe what they merged, and whichever lands last is checked like any other.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping
from datetime import date
from typing import Any

from shared import codec
from shared.adapters.s3 import ObjectStore, StoredObject
from shared.clock import Clock, system_clock
from shared.domain import keys
from shared.domain.aggregate import AGGREGATE_FORMAT, Aggregate, collapse_users
from shared.domain.aggregate_absorb import absorb
from shared.domain.aggregate_parts import AGGREGATE_PARTS, part_json
from shared.gc_pause import collector_paused
from shared.storage.days import parse_head

log = logging.getLogger(__name__)

ROLLUP_SCHEMA = 1
ROLLUP_CONTENT_TYPE = "application/x-ndjson"

#: Day → ETag of the day's head (quotes stripped).
HeadVersions = dict[date, str]


def normalized_etag(etag: str) -> str:
    """ETags as LIST and GET report them may differ in their quotes only."""
    return etag.strip().strip('"')


async def list_month_heads(store: ObjectStore, org_id: str, month: date) -> HeadVersions:
    """The month's day heads and their ETags, from one LIST of ``days/YYYY-MM-``."""
    heads: HeadVersions = {}
    for item in await store.list_objects(keys.month_days_prefix(org_id, month)):
        day = keys.parse_day_head_key(str(item["Key"]))
        if day is not None and (day.year, day.month) == (month.year, month.month):
            heads[day] = normalized_etag(str(item["ETag"]))
    return heads


def _manifest(heads: Mapping[date, str]) -> dict[str, str]:
    return {day.isoformat(): heads[day] for day in sorted(heads)}


def encode_rollup(
    org_id: str,
    month: date,
    part: str,
    heads: Mapping[date, str],
    body: dict[str, Any],
    *,
    clock: Clock = system_clock,
) -> bytes:
    """One rollup document: header line, then the part's JSON."""
    encoded_body = codec.dumps(body)
    header = {
        "schema": ROLLUP_SCHEMA,
        "org_id": org_id,
        "month": f"{month:%Y-%m}",
        "part": part,
        "aggregate_format": AGGREGATE_FORMAT,
        "days": _manifest(heads),
        "body_sha256": hashlib.sha256(encoded_body).hexdigest(),
        "built_at": clock().isoformat(timespec="seconds"),
    }
    return codec.dumps(header) + b"\n" + encoded_body


def decode_rollup(
    data: bytes, *, org_id: str, month: date, part: str, heads: Mapping[date, str]
) -> dict[str, Any] | None:
    """The part's JSON if ``data`` is a rollup of exactly this workspace, month and part
    summarizing exactly ``heads``; None otherwise (stale, foreign, corrupt)."""
    header_bytes, newline, body = data.partition(b"\n")
    if not newline:
        return None
    try:
        header = codec.loads(header_bytes)
    except codec.JSONDecodeError:
        return None
    if not isinstance(header, dict):
        return None
    expected = {
        "schema": ROLLUP_SCHEMA,
        "org_id": org_id,
        "month": f"{month:%Y-%m}",
        "part": part,
        "aggregate_format": AGGREGATE_FORMAT,
        "days": _manifest(heads),
    }
    if any(header.get(name) != value for name, value in expected.items()):
        return None
    if header.get("body_sha256") != hashlib.sha256(body).hexdigest():
        return None
    try:
        decoded = codec.loads(body)
    except codec.JSONDecodeError:
        return None
    return decoded if isinstance(decoded, dict) else None


def rollup_aggregate(
    data: bytes, *, org_id: str, month: date, part: str, heads: Mapping[date, str]
) -> Aggregate | None:
    """The month's ``part`` from a stored rollup if it is fresh for ``heads``, else None."""
    with collector_paused():
        body = decode_rollup(data, org_id=org_id, month=month, part=part, heads=heads)
        if body is None:
            log.info("month rollup %s %s/%s is stale or foreign: ignored", part, org_id, month)
            return None
        return Aggregate.from_json(body)


async def read_month_heads(
    store: ObjectStore,
    org_id: str,
    days: list[date],
    limit: asyncio.Semaphore,
) -> tuple[Aggregate, HeadVersions]:
    """Every part of the given days' heads merged, and the head versions merged (a head
    that vanished since it was listed is simply not part of the result).

    Heads are fetched concurrently but decoded one at a time as they arrive, each folded
    in before the next is decoded: memory holds the month and one decoded head."""
    merged = Aggregate()
    read: HeadVersions = {}

    async def fetch(day: date) -> tuple[date, StoredObject | None]:
        async with limit:
            return day, await store.get(keys.day_head_key(org_id, day))

    tasks = [asyncio.ensure_future(fetch(day)) for day in days]
    try:
        for next_done in asyncio.as_completed(tasks):
            day, head = await next_done
            if head is None:
                continue
            with collector_paused():
                absorb(merged, Aggregate.from_json(parse_head(head.body)[0]["aggregate"]))
            read[day] = normalized_etag(head.etag)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return merged, read


def encode_rollups(
    org_id: str,
    month: date,
    heads: Mapping[date, str],
    month_agg: Aggregate,
    *,
    clock: Clock = system_clock,
) -> dict[str, bytes]:
    """Every part of the month's rollup, encoded: part -> document. Encode before the
    month's objects are merged anywhere else (the documents share them)."""
    with collector_paused():
        if not month_agg.user_totals:  # derived once, for its rollup and for the reader
            month_agg.user_totals = collapse_users(month_agg.users)
        document = month_agg.to_json()
        return {
            part: encode_rollup(org_id, month, part, heads, part_json(document, part), clock=clock)
            for part in AGGREGATE_PARTS
        }


async def put_rollups(
    store: ObjectStore, org_id: str, month: date, documents: Mapping[str, bytes]
) -> int:
    """Store the month's rollup documents concurrently; best effort (returns how many were
    written). A failed write only means the next export builds the month again."""

    async def put(part: str, body: bytes) -> bool:
        try:
            await store.put(
                keys.month_rollup_key(org_id, month, part), body, content_type=ROLLUP_CONTENT_TYPE
            )
        except Exception:  # a cache write: any failure (even AccessDenied) costs a rebuild
            log.warning("could not store month rollup %s %s/%s", part, org_id, month, exc_info=True)
            return False
        return True

    return sum(await asyncio.gather(*(put(part, body) for part, body in documents.items())))
