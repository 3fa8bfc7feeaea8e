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
from shared.contracts.events import UsageEvent
from shared.domain.dimensions import DimensionEvent, dimension_update, occurred_ms
from shared.domain.facts import TS
from shared.domain.window import utc_day_of
from shared.storage.days import DayState, write_day
from shared.storage.dims import DimsState, write_dims

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
HEAD = {"org_id": "ws-1", "occurred_at": "2026-11-20T10:00:00Z"}
CALL = {"model": "m", "provider": "p"}


class CapturingStore:
    """Takes every write (as ``ObjectStore.put`` would, after serialising)."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    async def put(self, key: str, body: bytes, **_: Any) -> str:
        self.objects[key] = body
        return f'"{len(self.objects)}"'


TOO_LARGE_TO_STORE = [
    pytest.param(
        {"type": "user_upserted", "user_id": "u1", "payg_limit": 20_000_000}, id="payg_limit"
    ),
    pytest.param({"type": "payg_consumption", "user_id": "u1", "amount": 2e7}, id="payg_amount"),
    pytest.param(
        {"type": "api_request", "api_key_id": "k1", **CALL, "usage": {"cost_usd": 2e7}},
        id="cost_usd",
    ),
    pytest.param(
        {"type": "message", "user_id": "u1", **CALL, "usage": {"prompt_tokens": 2**63}},
        id="prompt_tokens_summed",
    ),
    pytest.param(
        {"type": "api_request", "api_key_id": "k1", **CALL, "requests": 2**63},
        id="requests_summed",
    ),
]


@pytest.mark.parametrize("fields", TOO_LARGE_TO_STORE)
async def test_accepted_events_can_always_be_made_durable(fields: dict[str, Any]) -> None:
    """Two such events of one user and day (a day's sums must be storable too)."""
    accepted = []
    for number in (1, 2):
        event = {"event_id": f"e{number}", **HEAD, **fields}
        result = validate_record(orjson.dumps(event), AcceptedRange.at(NOW), max_bytes=1 << 20)
        if not isinstance(result, Rejected):  # a rejected one is dead-lettered: fine
            accepted.append(result)
    store = CapturingStore()
    await store_events(store, accepted)
    assert len(store.objects) >= min(1, len(accepted))


async def store_events(store: CapturingStore, events: list[UsageEvent]) -> None:
    """Fold the events into day and dimension states and write them as ingest does."""
    typed = cast(ObjectStore, store)
    days: dict[date, DayState] = {}
    dims: dict[str, DimsState] = {}
    for event in events:
        fact = to_fact(event)
        if fact is not None:
            day = utc_day_of(fact[TS])
            days.setdefault(day, DayState(org_id=event.org_id, day=day)).apply(fact)
            continue
        dimension = cast(DimensionEvent, event)
        kind, entity, attributes = dimension_update(dimension)
        state = dims.setdefault(kind, DimsState(org_id=event.org_id, kind=kind))
        state.apply((entity, occurred_ms(dimension), event.event_id, attributes))
    for day_state in days.values():
        await write_day(typed, day_state)
    for dims_state in dims.values():
        await write_dims(typed, dims_state)
