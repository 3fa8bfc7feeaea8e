"""Fencing, eviction and retention of the ingest working set, against the real store."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import date, datetime, timedelta

import pytest

from services.ingest.janitor import ORPHAN_GRACE, Janitor, Sweep
from services.ingest.state_cache import StateCache
from shared import codec
from shared.adapters.s3 import ObjectStore
from shared.domain import keys
from shared.domain.facts import MESSAGE, Fact
from shared.settings import Settings
from shared.storage import days
from shared.storage.days import (
    INLINE_MAX_BYTES,
    event_digest,
    load_day,
    parse_head,
    read_day_facts,
    split_digests,
)
from tests.clock import month_start

DAY = date(2026, 6, 1)
KEY = ("ws-fence", DAY)


def fact(number: int, user: str = "u1") -> Fact:
    return (
        MESSAGE,
        f"e{number}",
        1_780_000_000_000 + number,
        user,
        None,
        None,
        None,
        "gpt",
        "openai",
        False,
        "",
        "WEB",
        [],
        1,
        10,
        1,
        0,
        0,
        0,
    )


async def test_two_owners_of_one_day_never_lose_or_double_an_event(
    fresh_settings: Settings,
) -> None:
    """A rebalance can leave a partition briefly with two writers; each sees some events
    twice. Conditional writes plus dedup must leave every event counted exactly once."""
    async with ObjectStore(fresh_settings, fresh_settings.aggregates_bucket) as store:
        first = StateCache(store, max_entries=100, max_weight=10**6, concurrency=4)
        second = StateCache(store, max_entries=100, max_weight=10**6, concurrency=4)
        for round_number in range(5):
            await first.ensure_days([KEY])
            await second.ensure_days([KEY])
            base = round_number * 100
            for number in range(base, base + 60):
                first.day(KEY).apply(fact(number))
            for number in range(base + 40, base + 100):  # 20 overlap with the first owner
                second.day(KEY).apply(fact(number, "u1"))
            reports = await asyncio.gather(first.flush(), second.flush())
            assert all(not cache.dirty for cache in (first, second))
            if round_number == 0:
                assert sum(report.conflicts for report in reports) >= 1
        stored = await load_day(store, *KEY)
        assert stored.digests() == digests_of(f"e{n}" for n in range(500))
        assert stored.aggregate.users["u1"]["gpt"][0] == 500
        facts = await read_day_facts(store, *KEY)
        assert facts is not None
        assert sorted(f[1] for f in facts) == sorted(f"e{n}" for n in range(500))


async def test_a_stale_listing_of_days_neither_loses_nor_doubles(
    fresh_settings: Settings,
) -> None:
    """A cache lists a workspace's days once, so it takes a day another worker has just
    created for new; its create-only write must fail, reload and dedup."""
    async with ObjectStore(fresh_settings, fresh_settings.aggregates_bucket) as store:
        late = StateCache(store, max_entries=100, max_weight=10**6, concurrency=4)
        other = StateCache(store, max_entries=100, max_weight=10**6, concurrency=4)
        earlier = (KEY[0], DAY - timedelta(days=1))
        await late.ensure_days([earlier])  # lists the workspace: no day exists yet
        await other.ensure_days([KEY])
        for number in range(10):
            other.day(KEY).apply(fact(number))
        await other.flush()
        await late.ensure_days([KEY])  # listed as absent: starts empty, without a GET
        assert late.day(KEY).etag is None
        assert not late.day(KEY).event_ids
        for number in range(5, 15):  # five of them were already counted by the other
            late.day(KEY).apply(fact(number))
        report = await late.flush()
        assert report.conflicts == 1
        stored = await load_day(store, *KEY)
        assert stored.digests() == digests_of(f"e{n}" for n in range(15))
        assert stored.aggregate.users["u1"]["gpt"][0] == 15


async def test_small_flushes_stay_inline_in_the_head_until_they_spill(
    fresh_settings: Settings,
) -> None:
    async with ObjectStore(fresh_settings, fresh_settings.aggregates_bucket) as store:
        cache = StateCache(store, max_entries=100, max_weight=10**6, concurrency=4)
        for number in range(40):
            await cache.ensure_days([KEY])
            cache.day(KEY).apply(fact(number))
            await cache.flush()
        head = await store.get(keys.day_head_key(*KEY))
        assert head is not None
        document, inline = parse_head(head.body)
        assert (document["segments"], document["inline_facts"], document["facts"]) == ([], 40, 40)
        assert len(await store.list_objects(keys.day_prefix(*KEY))) == 1  # the head alone
        # Past INLINE_MAX_BYTES the inline facts spill into one segment.
        await cache.ensure_days([KEY])
        for number in range(40, 40 + INLINE_MAX_BYTES // len(inline) * 40 + 1):
            cache.day(KEY).apply(fact(number))
        await cache.flush()
        head = await store.get(keys.day_head_key(*KEY))
        assert head is not None
        document, inline = parse_head(head.body)
        assert (len(document["segments"]), document["inline_facts"], inline) == (1, 0, b"")
        facts = await read_day_facts(store, *KEY)
        assert facts is not None
        assert len(facts) == document["facts"] == document["segments"][0]["facts"]
        assert len({f[1] for f in facts}) == len(facts)
        # A reload knows every event of both the segment and the (now empty) inline part,
        # from the segment's digest object.
        ids = await store.get(document["segments"][0]["ids"])
        assert ids is not None
        assert set(split_digests(ids.body)) == digests_of(f[1] for f in facts)
        reloaded = await load_day(store, *KEY)
        assert (reloaded.event_ids, reloaded.digests()) == (set(), digests_of(f[1] for f in facts))
        assert not reloaded.apply(facts[0]), "an event in a segment is a duplicate"
        assert reloaded.apply(fact(10**6))


async def test_many_flushes_compact_segments_without_losing_facts(
    fresh_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(days, "INLINE_MAX_BYTES", 0)  # every flush spills a segment
    async with ObjectStore(fresh_settings, fresh_settings.aggregates_bucket) as store:
        cache = StateCache(store, max_entries=100, max_weight=10**6, concurrency=4)
        for number in range(40):
            await cache.ensure_days([KEY])
            cache.day(KEY).apply(fact(number))
            await cache.flush()
        head = await store.get(keys.day_head_key(*KEY))
        assert head is not None
        document, inline = parse_head(head.body)
        assert 1 <= len(document["segments"]) <= 16
        assert inline == b""
        assert document["facts"] == 40
        facts = await read_day_facts(store, *KEY)
        assert facts is not None
        assert len(facts) == 40
        # Compaction joined the digest objects too; superseded objects go after a grace.
        assert (await load_day(store, *KEY)).digests() == digests_of(f"e{n}" for n in range(40))
        named = {key for s in document["segments"] for key in (s["key"], s["ids"])}
        listed = {item["Key"] for item in await store.list_objects(keys.day_prefix(*KEY))}
        assert named <= listed


async def test_a_segment_without_a_digest_object_is_read_whole(
    fresh_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Days written before digest objects existed still deduplicate on reload, and the
    next compaction gives them a digest object."""
    monkeypatch.setattr(days, "INLINE_MAX_BYTES", 0)
    async with ObjectStore(fresh_settings, fresh_settings.aggregates_bucket) as store:
        cache = StateCache(store, max_entries=100, max_weight=10**6, concurrency=4)
        await cache.ensure_days([KEY])
        for number in range(30):
            cache.day(KEY).apply(fact(number))
        await cache.flush()
        head = await store.get(keys.day_head_key(*KEY))
        assert head is not None
        document, inline = parse_head(head.body)
        (segment,) = document["segments"]
        await store.delete(segment.pop("ids"))
        aggregate = codec.dumps(document.pop("aggregate"))
        await store.put(keys.day_head_key(*KEY), days.encode_head(document, aggregate, inline))
        old = await load_day(store, *KEY)
        assert old.digests() == digests_of(f"e{n}" for n in range(30))
        assert not old.apply(fact(7))
        monkeypatch.setattr(days, "MAX_SEGMENTS", 1)  # the next spill compacts
        assert old.apply(fact(30))
        await days.write_day(store, old)
        head = await store.get(keys.day_head_key(*KEY))
        assert head is not None
        (compacted,) = parse_head(head.body)[0]["segments"]
        ids = await store.get(compacted["ids"])
        assert ids is not None
        assert set(split_digests(ids.body)) == digests_of(f"e{n}" for n in range(31))


def digests_of(event_ids: Iterable[str]) -> set[bytes]:
    return {event_digest(event_id) for event_id in event_ids}


async def test_clean_states_are_evicted_beyond_the_bound(fresh_settings: Settings) -> None:
    async with ObjectStore(fresh_settings, fresh_settings.aggregates_bucket) as store:
        cache = StateCache(store, max_entries=5, max_weight=10**6, concurrency=4)
        wanted = [("ws-evict", DAY + timedelta(days=offset)) for offset in range(12)]
        await cache.ensure_days(wanted)
        for index, key in enumerate(wanted):
            cache.day(key).apply(fact(index))
        assert cache.needs_early_flush()
        assert cache.evict() == 0, "dirty states are never evicted"
        await cache.flush()
        assert cache.evict() == 7
        assert len(cache.days) == 5
        assert list(cache.days) == wanted[-5:], "least recently used go first"
        await cache.ensure_days(wanted[:1])
        assert cache.days[wanted[0]].digests() == {event_digest("e0")}, "reloads intact"


async def test_clean_states_are_evicted_beyond_the_bytes_bound(fresh_settings: Settings) -> None:
    async with ObjectStore(fresh_settings, fresh_settings.aggregates_bucket) as store:
        wanted = [("ws-bytes", DAY + timedelta(days=offset)) for offset in range(10)]
        cache = StateCache(store, max_entries=100, max_weight=10**6, concurrency=4)
        await cache.ensure_days(wanted)
        for index, key in enumerate(wanted):
            for number in range(50):
                cache.day(key).apply(fact(index * 1000 + number, f"user-{number}"))
        await cache.flush()
        per_day = cache.days[wanted[0]].nbytes
        assert per_day > 50 * 100, "ids, inline facts and the aggregate are counted"
        bounded = StateCache(
            store, max_entries=100, max_weight=10**6, concurrency=4, max_bytes=per_day * 7 // 2
        )
        await bounded.ensure_days(wanted)
        assert bounded.evict() == 7
        assert list(bounded.days) == wanted[-3:]
        await bounded.ensure_days(wanted)
        assert not bounded.needs_early_flush(), "clean states are evicted, not flushed"
        assert len(bounded.days) == 3
        assert bounded.nbytes <= per_day * 7 // 2
        await bounded.ensure_days(wanted[:1])
        assert bounded.days[wanted[0]].knows("e0"), "an evicted day reloads intact"


def _retention_cutoff(settings: Settings, now: datetime) -> date:
    """The oldest day the janitor keeps at ``now``: retention plus margin, in UTC days."""
    return (now - timedelta(days=settings.retention_days + settings.retention_margin_days)).date()


async def _sweep_after_grace(
    janitor: Janitor, store: ObjectStore, prefix: str, now: datetime
) -> Sweep:
    """Sweep once every object under ``prefix`` is older than the orphan grace: exactly one
    day after ``now`` (the cutoff moves by one day), which the store's own LastModified
    (its real clock) must precede by the grace — true unless the session ran for a day."""
    later = now + timedelta(days=1)
    written = [item["LastModified"] for item in await store.list_objects(prefix)]
    assert written
    assert max(written) + ORPHAN_GRACE < later, "the session ran for a day"
    return await janitor.sweep(later)


async def test_janitor_deletes_expired_days_and_orphan_segments_only(
    fresh_settings: Settings, now: datetime
) -> None:
    settings = fresh_settings
    old_day = _retention_cutoff(settings, now) - timedelta(days=1)
    recent = now.date() - timedelta(days=20)
    async with ObjectStore(settings, settings.aggregates_bucket) as store:
        cache = StateCache(store, max_entries=100, max_weight=10**6, concurrency=4)
        for day in (old_day, recent):
            await cache.ensure_days([("ws-jan", day)])
            cache.day(("ws-jan", day)).apply(fact(1))
        await cache.flush()
        orphan = keys.new_facts_key("ws-jan", recent)
        await store.put(orphan, b"[]\n")
        await store.put(keys.digests_key(orphan), b"")
        janitor = Janitor(settings, store)
        # Written after the session started: younger than the grace at ``now``.
        assert await janitor.sweep(now) == Sweep(days=1), "a fresh orphan may be in flight"
        prefix = keys.day_prefix("ws-jan", recent)
        assert await _sweep_after_grace(janitor, store, prefix, now) == Sweep(orphans=2)
        assert await store.get(orphan) is None
        assert await store.get(keys.digests_key(orphan)) is None
        assert await store.get(keys.day_head_key("ws-jan", old_day)) is None
        assert (await load_day(store, "ws-jan", recent)).knows("e1")


def _mid_month_retention(settings: Settings, now: datetime) -> Settings:
    """``settings`` with a margin (0-2 days longer) that puts the cutoff at ``now`` neither
    on the first nor on the last day of its month: so that, on any date, the cutoff's
    month straddles it on both sweeps (at ``now`` and a day later)."""
    for extra in range(3):
        margin = settings.retention_margin_days + extra
        candidate = settings.model_copy(update={"retention_margin_days": margin})
        cutoff = _retention_cutoff(candidate, now)
        if cutoff.day > 1 and (cutoff + timedelta(days=1)).month == cutoff.month:
            return candidate
    raise AssertionError("unreachable: one of three days in a row is mid-month")


async def test_janitor_deletes_rollups_of_expired_and_emptied_months_only(
    fresh_settings: Settings, now: datetime
) -> None:
    settings = _mid_month_retention(fresh_settings, now)
    cutoff = _retention_cutoff(settings, now)
    # expired: wholly before the cutoff, no head; straddling: the cutoff's month, one head
    # at or after the cutoff (on both sweeps); emptied: recent, no head left; kept: recent,
    # with a head.
    expired, straddling = month_start(cutoff, 1), month_start(cutoff)
    emptied, kept = month_start(now.date(), 2), month_start(now.date(), 1)
    assert expired < straddling < emptied < kept
    async with ObjectStore(settings, settings.aggregates_bucket) as store:
        cache = StateCache(store, max_entries=100, max_weight=10**6, concurrency=4)
        for day in (cutoff + timedelta(days=1), kept + timedelta(days=2)):
            await cache.ensure_days([("ws-roll", day)])
            cache.day(("ws-roll", day)).apply(fact(day.toordinal()))
        await cache.flush()
        for month in (expired, straddling, emptied, kept):
            for part in ("users", "models"):
                await store.put(keys.month_rollup_key("ws-roll", month, part), b"{}\n{}")
        janitor = Janitor(settings, store)
        assert await janitor.sweep(now) == Sweep(rollups=2), "an emptied month may be in flight"
        prefix = keys.months_prefix("ws-roll")
        assert await _sweep_after_grace(janitor, store, prefix, now) == Sweep(rollups=2)
        left = {item["Key"] for item in await store.list_objects(prefix)}
        assert left == {
            keys.month_rollup_key("ws-roll", month, part)
            for month in (straddling, kept)
            for part in ("users", "models")
        }
