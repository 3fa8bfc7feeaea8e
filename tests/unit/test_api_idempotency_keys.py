"""Issue 13, finding 6: an Idempotency-Key remembers the request it was first used for."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.api.idempotency_keys import (
    IdempotencyKeys,
    idempotency_key_object,
    request_fingerprint,
)
from tests.unit.memory_store import MemoryStore


def _message(data_type: str = "users", **changes: Any) -> dict[str, Any]:
    message = {
        "request_id": "client-1",
        "org_id": "ws-acme",
        "data_type": data_type,
        "from": {"date": "2026-01-01", "timezone": "UTC"},
        "to": {"date": "2026-01-31", "timezone": "UTC"},
        "group_by": None,
        "requested_by": "api-key:0123456789abcdef",
    }
    return message | changes


def test_the_fingerprint_is_what_is_asked_not_who_asks_or_in_which_order() -> None:
    base = request_fingerprint(_message())
    reordered = dict(reversed(list(_message().items())))
    assert request_fingerprint(reordered) == base
    assert request_fingerprint(_message(requested_by="api-key:fedcba9876543210")) == base
    assert request_fingerprint(_message("models")) != base
    assert request_fingerprint(_message(group_by="model")) != base
    assert request_fingerprint(_message(to={"date": "2026-01-30", "timezone": "UTC"})) != base
    # No format is CSV, the default; any other format is another request.
    assert request_fingerprint(_message(format="csv")) == base
    assert request_fingerprint(_message(format=None)) == base
    parquet = request_fingerprint(_message(format="parquet"))
    assert parquet not in (base, request_fingerprint(_message(format="ndjson")))
    # No bucket (absent or null) is the same request; each bucket is another.
    assert request_fingerprint(_message(bucket=None)) == base
    weekly = request_fingerprint(_message(bucket="week"))
    assert weekly not in (base, request_fingerprint(_message(bucket="day")))
    # a callback URL counts only when given (fingerprints made before webhooks still match)
    assert request_fingerprint(_message(callback_url=None)) == base
    hooked = request_fingerprint(_message(callback_url="https://a.example/x"))
    assert hooked not in (base, request_fingerprint(_message(callback_url="https://b.example/x")))
    # No destination (absent or null) is the same request; each destination is another.
    assert request_fingerprint(_message(destination=None)) == base
    archive = request_fingerprint(_message(destination="archive"))
    assert archive not in (base, request_fingerprint(_message(destination="lake")))


async def test_a_key_reused_for_a_different_request_is_refused() -> None:
    store = MemoryStore()
    keys = IdempotencyKeys(store)
    assert await keys.claim("ws-acme", "client-1", _message()) is None
    assert await keys.claim("ws-acme", "client-1", _message()) is None  # a true repeat
    earlier = await keys.claim("ws-acme", "client-1", _message("models"))
    assert earlier == "a users export from 2026-01-01 (UTC) to 2026-01-31 (UTC)"
    # per workspace: another workspace may use the same key for anything
    assert await keys.claim("ws-other", "client-1", _message("models")) is None


async def test_two_first_uses_racing_are_decided_by_the_store() -> None:
    keys = IdempotencyKeys(MemoryStore())
    answers = await asyncio.gather(
        keys.claim("ws-acme", "race", _message()), keys.claim("ws-acme", "race", _message("models"))
    )
    assert sorted(answer is None for answer in answers) == [False, True]


@pytest.mark.parametrize(("org_id", "request_id"), [("../x", "k"), ("ws", "a/../b"), ("ws", "")])
def test_object_keys_come_only_from_valid_ids(org_id: str, request_id: str) -> None:
    with pytest.raises(ValueError, match="refusing"):
        idempotency_key_object(org_id, request_id)
