"""Read what ingest stored (format 2: the workspace tables), for assertions."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

from shared.columnar.tables import TableStore, read_dimensions, read_facts
from shared.settings import Settings
from tests.integration.recompute import figures_of_facts

_ALL = (date(1970, 1, 1), date(9999, 12, 31))


async def stored_day_aggregates(
    settings: Settings, orgs: list[str]
) -> dict[tuple[str, date], dict[str, Any]]:
    """(org, UTC day) -> the recompute's figures of the stored facts; fails if any
    ``event_id`` is stored twice."""
    store = TableStore.of(settings)
    found: dict[tuple[str, date], dict[str, Any]] = {}
    for org in orgs:
        facts = (await read_facts(store, org, *_ALL)).to_pylist()
        doubled = [key for key, n in Counter(row["event_id"] for row in facts).items() if n > 1]
        assert not doubled, f"{org}: {len(doubled)} event ids stored twice, e.g. {doubled[0]}"
        by_day: dict[date, list[dict[str, Any]]] = {}
        for row in facts:
            by_day.setdefault(row["day"], []).append(row)
        for day, rows in by_day.items():
            found[(org, day)] = figures_of_facts(rows)
    return found


async def stored_dimension_event_ids(settings: Settings, org: str, kind: str) -> set[str]:
    dimensions = (await read_dimensions(TableStore.of(settings), org)).to_pylist()
    ids = [row["event_id"] for row in dimensions if row["kind"] == kind]
    assert len(ids) == len(set(ids)), f"{org}/{kind}: a dimension version is stored twice"
    return set(ids)
