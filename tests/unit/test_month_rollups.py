"""Month rollups on an in-memory store: the window read through rollups equals the one
read day by day; a head rewritten after its month's rollup makes the rollup stale (it is
rebuilt, the late event counted); foreign, corrupt or unwritable rollups change nothing."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from services.exporter import window_reader
from services.exporter.window_reader import WindowRead, read_window
from shared.domain import keys
from shared.domain.aggregate import AGGREGATE_FORMAT, Aggregate
from shared.domain.aggregate_parts import AGGREGATE_PARTS, only_part
from shared.domain.facts import API_REQUEST, MESSAGE, PAYG, TS, Fact
from shared.domain.window import DAY_MS, Window, day_start_ms, resolve_window
from shared.errors import StoreUnavailable
from shared.storage import rollups
from shared.storage.days import load_day, write_day
from shared.storage.rollups import decode_rollup, encode_rollup
from tests.unit.memory_store import MemoryStore

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
ORG = "ws-roll"
OTHER = "ws-other"
JANUARY, FEBRUARY = date(2026, 1, 1), date(2026, 2, 1)
_numbers = iter(range(10**9))


def window() -> Window:
    """Dec 15 .. Mar 10 (now): January and February whole, the rest day by day."""
    return resolve_window("2025-12-15", "UTC", "2026-03-10", "UTC", now=NOW)


def activity(day: date, seed: int, hour: int = 3) -> list[Fact]:
    """A few facts of every kind on ``day``, touching every aggregate part."""
    at = day_start_ms(day) + hour * 3_600_000
    n = next(_numbers)
    user, agent = f"u{seed % 3}", f"a{seed % 2}"
    return [
        (MESSAGE, f"m{n}", at, user, agent, None, f"c{seed}", "gpt", "openai", False, "",
         "WEB", ["canvas"], 1, 10 + seed, 5, 2, 1, 1_000 * seed),
        (MESSAGE, f"p{n}", at + 1, user, None, f"p{seed % 4}", None, "claude", "anthropic",
         True, "eu", "API", [], 1, 7, 3, 0, 0, 17),
        (API_REQUEST, f"k{n}", at + 2, f"k{seed % 2}", "o3", "openai", False, "", "API", 2,
         100, 50, 10, 0, 5_000),
        (PAYG, f"g{n}", at + 3, user, 1_250_000),
    ]  # fmt: skip


async def store_facts(store: MemoryStore, org_id: str, facts: list[Fact]) -> None:
    """Commit facts the way ingest does: per UTC day, through the day's head."""
    by_day: dict[date, list[Fact]] = defaultdict(list)
    for fact in facts:
        by_day[date(1970, 1, 1) + timedelta(days=fact[TS] // DAY_MS)].append(fact)
    for day, found in by_day.items():
        state = await load_day(store, org_id, day)  # type: ignore[arg-type]
        for fact in found:
            state.apply(fact)
        await write_day(store, state)  # type: ignore[arg-type]


def dataset() -> list[Fact]:
    days = [date(2025, 12, 14), date(2025, 12, 15), date(2025, 12, 31)]
    days += [date(2026, 1, day) for day in (1, 2, 17, 31)]
    days += [date(2026, 2, day) for day in (1, 14, 28)]
    days += [date(2026, 3, 1), date(2026, 3, 9), date(2026, 3, 10)]
    facts = [fact for seed, day in enumerate(days) for fact in activity(day, seed)]
    return facts + activity(date(2026, 3, 10), 99, hour=13)  # after now: outside


def folded(facts: list[Fact], part: str) -> dict[str, Any]:
    """The oracle: the window's facts folded directly."""
    w = window()
    aggregate = Aggregate()
    for fact in facts:
        if w.contains(fact[TS]):
            aggregate.add(fact)
    return only_part(aggregate, part).to_json()


async def read(store: MemoryStore, part: str, **options: Any) -> WindowRead:
    return await read_window(store, ORG, window(), part, **options)  # type: ignore[arg-type]


@pytest.fixture
async def store() -> MemoryStore:
    memory = MemoryStore()
    await store_facts(memory, ORG, dataset())
    return memory


@pytest.mark.parametrize("part", list(AGGREGATE_PARTS))
async def test_rollups_read_what_the_day_heads_hold(store: MemoryStore, part: str) -> None:
    expected = folded(dataset(), part)
    by_heads = await read(store, part, use_rollups=False)
    assert (by_heads.rollup_months, by_heads.built_months) == (0, 0)
    cold = await read(store, part)
    assert (cold.rollup_months, cold.built_months, cold.partial_days) == (0, 2, 1)
    store.gets.clear()
    warm = await read(store, part)
    assert (warm.rollup_months, warm.built_months, warm.full_days) == (2, 0, 4)
    month_heads = [key for key in store.gets if "/days/2026-01-" in key or "/days/2026-02-" in key]
    assert month_heads == [], "a fresh rollup replaces its month's day heads"
    for result in (by_heads, cold, warm):
        assert result.aggregate.to_json() == expected
    assert all(expected[name] for name in AGGREGATE_PARTS[part]), "a test that can fail"


async def test_one_build_serves_every_part(store: MemoryStore) -> None:
    await read(store, "models")
    for part in AGGREGATE_PARTS:
        result = await read(store, part)
        assert (result.rollup_months, result.built_months) == (2, 0), part


async def test_a_late_event_after_the_rollup_is_counted_and_the_month_rebuilt(
    store: MemoryStore,
) -> None:
    await read(store, "users")
    late = activity(date(2026, 1, 17), 7, hour=20)  # a day that already has a head
    newcomer = activity(date(2026, 2, 20), 8)  # a day that had no head yet
    await store_facts(store, ORG, late + newcomer)
    result = await read(store, "users")
    assert (result.rollup_months, result.built_months) == (0, 2)
    assert result.aggregate.to_json() == folded(dataset() + late + newcomer, "users")
    again = await read(store, "agents")
    assert (again.rollup_months, again.built_months) == (2, 0)
    assert again.aggregate.to_json() == folded(dataset() + late + newcomer, "agents")


async def test_an_expired_day_makes_its_month_stale(store: MemoryStore) -> None:
    await read(store, "projects")
    january_first = keys.day_prefix(ORG, date(2026, 1, 1))
    for key in [key for key in store.objects if key.startswith(january_first)]:
        await store.delete(key)
    result = await read(store, "projects")
    assert (result.rollup_months, result.built_months) == (1, 1)
    remaining = [
        fact for fact in dataset() if fact[TS] // DAY_MS != day_start_ms(JANUARY) // DAY_MS
    ]
    assert result.aggregate.to_json() == folded(remaining, "projects")


async def test_a_foreign_rollup_under_our_key_is_ignored(store: MemoryStore) -> None:
    await store_facts(store, OTHER, [f for s in range(5) for f in activity(JANUARY, 50 + s)])
    await read_window(store, OTHER, window(), "users")  # type: ignore[arg-type]
    foreign = store.objects[keys.month_rollup_key(OTHER, JANUARY, "users")][0]
    await read(store, "users")
    await store.put(keys.month_rollup_key(ORG, JANUARY, "users"), foreign)
    result = await read(store, "users")
    assert (result.rollup_months, result.built_months) == (1, 1)
    assert result.aggregate.to_json() == folded(dataset(), "users")


@pytest.mark.parametrize("damage", ["truncated", "flipped", "empty", "header only"])
async def test_a_corrupt_rollup_is_ignored(store: MemoryStore, damage: str) -> None:
    await read(store, "agents")
    key = keys.month_rollup_key(ORG, FEBRUARY, "agents")
    body = store.objects[key][0]
    header, _, rest = body.partition(b"\n")
    damaged = {
        "truncated": body[: len(body) - 5],
        "flipped": header + b"\n" + rest.replace(b"1", b"2", 1),
        "empty": b"",
        "header only": header,
    }[damage]
    assert damaged != body
    await store.put(key, damaged)
    result = await read(store, "agents")
    assert (result.rollup_months, result.built_months) == (1, 1)
    assert result.aggregate.to_json() == folded(dataset(), "agents")


class UnwritableRollups(MemoryStore):
    """Refuses every rollup write, as a store without write access to months/ would."""

    async def put(self, key: str, body: bytes, **options: Any) -> str:
        if "/months/" in key:
            raise StoreUnavailable("injected")
        return await super().put(key, body, **options)


async def test_a_rollup_that_cannot_be_written_changes_nothing() -> None:
    memory = UnwritableRollups()
    await store_facts(memory, ORG, dataset())
    for _ in range(2):
        result = await read(memory, "api_keys")
        assert (result.rollup_months, result.built_months) == (0, 2)
        assert result.aggregate.to_json() == folded(dataset(), "api_keys")
    assert not [key for key in memory.objects if "/months/" in key]


HEADS = {date(2026, 1, 2): "etag-2", date(2026, 1, 1): "etag-1"}


def test_a_rollup_document_decodes_only_for_its_own_workspace_month_part_and_heads() -> None:
    body = {"projects": {"p1": 3}}
    data = encode_rollup(ORG, JANUARY, "projects", HEADS, body)
    same = {"org_id": ORG, "month": JANUARY, "part": "projects", "heads": dict(HEADS)}
    assert decode_rollup(data, **same) == body  # type: ignore[arg-type]
    others: list[dict[str, Any]] = [
        same | {"org_id": OTHER},
        same | {"month": FEBRUARY},
        same | {"part": "users"},
        same | {"heads": HEADS | {date(2026, 1, 3): "etag-3"}},
        same | {"heads": {date(2026, 1, 1): "etag-1"}},
        same | {"heads": HEADS | {date(2026, 1, 2): "etag-2b"}},
    ]
    for mismatch in others:
        assert decode_rollup(data, **mismatch) is None, mismatch


def test_a_rollup_of_another_aggregate_format_is_not_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = {"projects": {"p1": 3}}
    data = encode_rollup(ORG, JANUARY, "projects", HEADS, body)
    monkeypatch.setattr(rollups, "AGGREGATE_FORMAT", AGGREGATE_FORMAT + 1)
    same = {"org_id": ORG, "month": JANUARY, "part": "projects", "heads": dict(HEADS)}
    assert decode_rollup(data, **same) is None  # type: ignore[arg-type]


class StuckRollups(MemoryStore):
    """Never answers a rollup write, as a store that hangs would."""

    async def put(self, key: str, body: bytes, **options: Any) -> str:
        if "/months/" in key:
            await asyncio.Event().wait()
        return await super().put(key, body, **options)


async def test_an_export_does_not_wait_on_a_hung_rollup_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(window_reader, "ROLLUP_WRITE_WAIT_S", 0.05)
    memory = StuckRollups()
    await store_facts(memory, ORG, dataset())
    result = await asyncio.wait_for(read(memory, "api_keys"), timeout=10)
    assert (result.rollup_months, result.built_months) == (0, 2)
    assert result.aggregate.to_json() == folded(dataset(), "api_keys")
