"""Every event ingest accepts must be storable; numbers too large to store must be refused.

Found by the fault suite (``tests/integration/reliability/test_bad_input.py``): the
contract bounds tokens and money only from below, ingest accepts any JSON integer for a
count and any finite number for money, and state is stored with orjson, whose integers
stop at 64 bits. Money was held as integer pico-dollars, so one ``payg_limit`` or
``cost_usd`` of about 18.5 million USD (or a count near 2**64, or the sums of a few such
events) made the flush raise ``TypeError: Integer exceeds 64-bit range``: the worker
exited, restarted, re-read the same uncommitted event and exited again. Fixed by upper
bounds in validation and nano-dollars (docs/decisions.md, "Upper bounds").
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, cast

import orjson
import pytest

from services.ingest.validation import AcceptedRange, Rejected, to_fact, validate_record
from shared.adapters.s3 import ObjectStore
from shared.contracts.events import MAX_REQUESTS, MAX_TOKENS, MAX_USD, UsageEvent
from shared.domain.dimensions import DimensionEvent, dimension_update, occurred_ms
from shared.domain.facts import NANO, TS
from shared.domain.window import utc_day_of
from shared.storage.days import DayState, load_day, read_day_facts, write_day
from shared.storage.dims import DimsState, read_dims, write_dims
from tests.unit.memory_store import MemoryStore

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
HEAD = {"org_id": "ws-1", "occurred_at": "2026-11-20T10:00:00Z"}
CALL = {"model": "m", "provider": "p"}


#: (an event with the number at ``X``, where the contract puts it, its upper bound and type)
X = object()
BOUNDED = [
    pytest.param(
        {"type": "user_upserted", "user_id": "u1", "payg_limit": X},
        "user_upserted.payg_limit",
        MAX_USD,
        float,
        id="payg_limit",
    ),
    pytest.param(
        {"type": "payg_consumption", "user_id": "u1", "amount": X},
        "payg_consumption.amount",
        MAX_USD,
        float,
        id="payg_amount",
    ),
    pytest.param(
        {"type": "api_request", "api_key_id": "k1", **CALL, "usage": {"cost_usd": X}},
        "api_request.usage.cost_usd",
        MAX_USD,
        float,
        id="cost_usd",
    ),
    pytest.param(
        {"type": "message", "user_id": "u1", **CALL, "usage": {"prompt_tokens": X}},
        "message.usage.prompt_tokens",
        MAX_TOKENS,
        int,
        id="prompt_tokens_summed",
    ),
    pytest.param(
        {"type": "api_request", "api_key_id": "k1", **CALL, "requests": X},
        "api_request.requests",
        MAX_REQUESTS,
        int,
        id="requests_summed",
    ),
]


def _with(template: Any, number: int | float) -> Any:
    if template is X:
        return number
    if isinstance(template, dict):
        return {name: _with(value, number) for name, value in template.items()}
    return template


def _validate(number: int | float, fields: dict[str, Any], event_id: str) -> Any:
    event = {"event_id": event_id, **HEAD, **_with(fields, number)}
    return validate_record(orjson.dumps(event), AcceptedRange.at(NOW), max_bytes=1 << 20)


@pytest.mark.parametrize(("fields", "path", "bound", "kind"), BOUNDED)
def test_numbers_over_the_bound_are_refused_naming_field_and_bound(
    fields: dict[str, Any], path: str, bound: int, kind: type[float]
) -> None:
    """Just past the bound, and what once broke the flush (2e7 USD, 2**63 counts), is
    dead-lettered with the exact reason."""
    for number in (kind(bound + 1), kind(bound * 20), kind(2**63)):
        assert _validate(number, fields, "e1") == Rejected(
            "invalid_event", f"{path}: Input should be less than or equal to {bound}"
        ), number


@pytest.mark.parametrize(("fields", "path", "bound", "kind"), BOUNDED)
async def test_events_at_the_bound_are_accepted_and_made_durable(
    fields: dict[str, Any], path: str, bound: int, kind: type[float]
) -> None:
    """Two such events of one user and day (a day's sums must be storable too): they are
    written, and read back exactly as they were held in memory."""
    number = kind(bound)  # the largest accepted
    accepted = [_validate(number, fields, f"e{n}") for n in (1, 2)]
    assert not any(isinstance(event, Rejected) for event in accepted), accepted
    store = MemoryStore()
    typed = cast(ObjectStore, store)
    days, dims = await store_events(typed, accepted)
    assert len(days) + len(dims) == 1, "one user and day: one state"
    for (org_id, day), state in days.items():
        facts = [fact for fact in map(to_fact, accepted) if fact is not None]
        assert len(facts) == 2
        assert sorted(await read_day_facts(typed, org_id, day) or []) == sorted(facts)
        stored = (await load_day(typed, org_id, day)).aggregate.to_json()
        assert stored == state.aggregate.to_json()
        assert orjson.loads(orjson.dumps(stored)) == stored  # and it is plain JSON
    for (org_id, kind), dims_state in dims.items():
        assert (await read_dims(typed, org_id, kind)).versions == dims_state.history.versions
        ((version_1, version_2),) = dims_state.history.versions.values()
        assert version_1[2]["payg_limit"] == version_2[2]["payg_limit"] == bound * NANO


async def store_events(
    store: ObjectStore, events: list[UsageEvent]
) -> tuple[dict[tuple[str, date], DayState], dict[tuple[str, str], DimsState]]:
    """Fold the events into day and dimension states and write them as ingest does;
    returns the states as they were in memory."""
    days: dict[tuple[str, date], DayState] = {}
    dims: dict[tuple[str, str], DimsState] = {}
    for event in events:
        fact = to_fact(event)
        if fact is not None:
            day = utc_day_of(fact[TS])
            key = (event.org_id, day)
            days.setdefault(key, DayState(org_id=event.org_id, day=day)).apply(fact)
            continue
        dimension = cast(DimensionEvent, event)
        kind, entity, attributes = dimension_update(dimension)
        state = dims.setdefault((event.org_id, kind), DimsState(org_id=event.org_id, kind=kind))
        state.apply((entity, occurred_ms(dimension), event.event_id, attributes))
    for day_state in days.values():
        await write_day(store, day_state)
    for dims_state in dims.values():
        await write_dims(store, dims_state)
    return days, dims
