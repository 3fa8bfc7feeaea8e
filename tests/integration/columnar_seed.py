"""Seed data for the format-3 table tests: facts and dimension versions as the fold makes
them (``shared.domain.facts`` tuples), deterministic from a seed, on days before today."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa

from shared.columnar.schema import DimensionVersion, dimensions_table, facts_table
from shared.columnar.tables import TableStore, WorkspaceTables
from shared.domain.facts import API_REQUEST, MESSAGE, PAYG, Fact
from shared.settings import Settings
from tests.clock import TODAY

DAY_MS = 86_400_000


def day_start_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def seed_days(count: int) -> list[date]:
    """``count`` consecutive UTC days ending 40 days before today."""
    last = TODAY - timedelta(days=40)
    return [last - timedelta(days=count - 1 - i) for i in range(count)]


def activity(seed: int, prefix: str, count: int, days: list[date]) -> list[Fact]:
    """``count`` facts of the three kinds, spread over ``days``, ids ``{prefix}-{i}``."""
    rng = random.Random(seed)
    facts: list[Fact] = []
    for i in range(count):
        day = rng.choice(days)
        ts = day_start_ms(day) + rng.randrange(DAY_MS)
        event_id = f"{prefix}-{i}"
        user = f"u{rng.randrange(7)}"
        roll = rng.random()
        if roll < 0.7:
            facts.append(
                (MESSAGE, event_id, ts, user, rng.choice([None, "a1"]), rng.choice([None, "p1"]),
                 f"c{rng.randrange(3)}", rng.choice(["m-large", "m-small"]), "prov",
                 rng.random() < 0.2, "", "WEB", sorted({rng.choice(["x", "y"])}),
                 1, rng.randrange(1000), rng.randrange(500), 0, 0, rng.randrange(10**9))
            )  # fmt: skip
        elif roll < 0.9:
            facts.append(
                (API_REQUEST, event_id, ts, f"k{rng.randrange(3)}", "m-large", "prov", False,
                 "dep", "API", rng.randrange(1, 4), rng.randrange(100), rng.randrange(50), 0, 0,
                 rng.randrange(10**8))
            )  # fmt: skip
        else:
            facts.append((PAYG, event_id, ts, user, rng.randrange(10**9)))
    return facts


def versions(prefix: str, count: int, days: list[date]) -> list[DimensionVersion]:
    found: list[DimensionVersion] = []
    for i in range(count):
        attributes: dict[str, Any] = {"name": f"user {i}", "email": f"u{i}@x.test"}
        attributes["deleted"] = False
        ts = day_start_ms(days[i % len(days)]) + i
        found.append(("users", f"u{i}", ts, f"{prefix}-dim-{i}", attributes))
    return found


def rows(org: str, facts: list[Fact], dims: list[DimensionVersion]) -> tuple[pa.Table, pa.Table]:
    return facts_table(org, facts), dimensions_table(org, dims)


async def store_workspace(
    settings: Settings, org: str, facts: list[Fact], dims: list[DimensionVersion]
) -> None:
    """Commit ``facts`` and ``dims`` to ``org``'s format-3 tables, in two flushes."""
    tables = await WorkspaceTables.open(TableStore.of(settings), org)
    half = len(facts) // 2
    await tables.append(*rows(org, facts[:half], dims), {("usage.events", 0): half})
    await tables.append(*rows(org, facts[half:], []), {("usage.events", 0): len(facts)})
