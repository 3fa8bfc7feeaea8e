"""Read what ingest stored, for assertions."""

from __future__ import annotations

from datetime import date
from typing import Any

from shared.adapters.s3 import ObjectStore
from shared.domain import keys
from shared.settings import Settings
from shared.storage.days import parse_head, stored_days
from shared.storage.dims import read_dims


async def stored_day_aggregates(
    settings: Settings, orgs: list[str]
) -> dict[tuple[str, date], dict[str, Any]]:
    found: dict[tuple[str, date], dict[str, Any]] = {}
    async with ObjectStore(settings, settings.aggregates_bucket) as store:
        for org in orgs:
            for day in await stored_days(store, org):
                head = await store.get(keys.day_head_key(org, day))
                assert head is not None, f"day {org}/{day} has segments but no head"
                found[(org, day)] = parse_head(head.body)[0]["aggregate"]
    return found


async def stored_dimension_event_ids(settings: Settings, org: str, kind: str) -> set[str]:
    async with ObjectStore(settings, settings.aggregates_bucket) as store:
        history = await read_dims(store, org, kind)
    return {version[1] for versions in history.versions.values() for version in versions}
