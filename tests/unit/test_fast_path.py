"""The hand-written hot path may only accept what the pydantic models accept, and must
build exactly the fact they would; the simulated workload must take it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.ingest.fast_path import activity_fact
from services.ingest.validation import to_fact
from shared.contracts.events import MAX_REQUESTS, MAX_TOKENS, MAX_USD, usage_event_adapter
from shared.simulation import SimConfig, simulate

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def reference(decoded: dict[str, Any]) -> tuple[str, Any] | None:
    """What the models say: (org_id, fact) for a valid activity event, else None."""
    try:
        event = usage_event_adapter.validate_python(decoded)
    except ValidationError:
        return None
    fact = to_fact(event)
    return None if fact is None else (event.org_id, fact)


TIMESTAMPS = st.one_of(
    st.sampled_from(
        [
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:00:00.5Z",
            "2026-01-01T00:00:00.123456+05:45",
            "2026-01-01T00:00:00.1234567Z",
            "2026-03-29T02:30:00+23:59",
            "2026-03-29T02:30:00+24:00",
            "2026-03-29T02:30:00-00:00",
            "2026-02-29T00:00:00Z",
            "2028-02-29T23:59:59.999-03:30",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:60Z",
            "2026-01-01t00:00:00z",
            "2026-01-01 00:00:00Z",
            "2026-01-01T00:00Z",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00+0100",
            "2026-01-01",
            "１２３４-01-01T00:00:00Z",
            "",
        ]
    ),
    st.datetimes(
        min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 30), timezones=st.timezones()
    ).map(lambda moment: moment.isoformat()),
    st.text(max_size=30),
    st.integers(),
    st.none(),
)
IDS = st.one_of(
    st.sampled_from(["u-1", "ws.acme", "a", "a..b", "-x", "x/y", "x" * 128, "x" * 129, "", "é"]),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,20}", fullmatch=True),
    st.text(max_size=10),
    st.integers(),
    st.none(),
)
TEXTS = st.one_of(
    st.sampled_from(["gpt-4.1", "openai", "web", "Slack", "", "x" * 256, "x" * 257, "ß"]),
    st.text(max_size=12),
    st.integers(),
    st.booleans(),
    st.none(),
)
INTS = st.one_of(
    st.integers(min_value=-2, max_value=MAX_TOKENS + 2),
    st.sampled_from([0, 1, MAX_REQUESTS, MAX_REQUESTS + 1, MAX_TOKENS, True, False, 1.0, "3"]),
    st.none(),
)
COSTS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1, max_value=MAX_USD * 2),
    st.sampled_from([0, 1, MAX_USD, MAX_USD + 1, 0.000123, 1e-12, True, "0.1", -0.0]),
    st.none(),
)


def optional(key: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(st.just({}), values.map(lambda value: {key: value}))


def usage() -> st.SearchStrategy[Any]:
    fields = st.fixed_dictionaries(
        {},
        optional={
            "prompt_tokens": INTS,
            "completion_tokens": INTS,
            "cached_prompt_tokens": INTS,
            "cache_creation_tokens": INTS,
            "cost_usd": COSTS,
            "unknown": st.integers(),
        },
    )
    return st.one_of(fields, st.none(), st.just([]), st.just("usage"))


def events() -> st.SearchStrategy[dict[str, Any]]:
    common = {
        "type": st.one_of(
            st.sampled_from(["message", "api_request", "payg_consumption", "Message", 1]),
            st.lists(st.integers(), max_size=2),  # unhashable: found by the fault suite
            st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
        ),
        "event_id": IDS,
        "org_id": IDS,
        "occurred_at": TIMESTAMPS,
    }
    optional_fields = {
        "user_id": IDS,
        "api_key_id": IDS,
        "amount": COSTS,
        "assistant_id": IDS,
        "project_id": IDS,
        "conversation_id": TEXTS,
        "model": TEXTS,
        "provider": TEXTS,
        "byok": st.one_of(st.booleans(), st.sampled_from([0, 1, "true", None])),
        "deployment": TEXTS,
        "source": TEXTS,
        "actions": st.one_of(st.lists(TEXTS, max_size=4), st.none(), st.just("canvas")),
        "requests": INTS,
        "usage": usage(),
        "unknown": TEXTS,
    }
    return st.fixed_dictionaries(common, optional=optional_fields)


@settings(max_examples=3000, deadline=None)
@given(event=events())
def test_fast_path_accepts_only_what_the_models_accept_with_the_same_fact(
    event: dict[str, Any],
) -> None:
    fast = activity_fact(event)
    if fast is not None:
        assert reference(event) == fast


@settings(max_examples=500, deadline=None)
@given(
    event=st.fixed_dictionaries(
        {
            "type": st.just("message"),
            "event_id": st.from_regex(r"[A-Za-z0-9._:-]{1,40}", fullmatch=True),
            "org_id": st.just("ws-1"),
            "occurred_at": st.datetimes(
                min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)
            ).map(lambda moment: moment.replace(tzinfo=UTC).isoformat()),
            "user_id": st.just("u-1"),
            "model": st.just("gpt-4.1"),
            "provider": st.just("openai"),
            "usage": st.fixed_dictionaries(
                {
                    "prompt_tokens": st.integers(10, 1000),
                    "completion_tokens": st.integers(0, 1000),
                    "cost_usd": st.floats(0, 100, allow_nan=False),
                }
            ),
        }
    )
)
def test_plain_valid_messages_take_the_fast_path(event: dict[str, Any]) -> None:
    expected = reference(event)
    assert expected is not None
    assert activity_fact(event) == expected


def test_every_simulated_activity_event_takes_the_fast_path_with_the_models_fact() -> None:
    seen = 0
    for record in simulate(SimConfig(seed=3, orgs=2, events=3000, end=NOW), now=NOW):
        if record.reason is not None:
            continue
        decoded = orjson.loads(record.value)
        expected = reference(decoded)
        if expected is None:
            assert activity_fact(decoded) is None
            continue
        assert activity_fact(decoded) == expected
        seen += 1
    assert seen > 2000


def test_anything_unusual_falls_back_rather_than_guessing() -> None:
    event = {
        "type": "message",
        "event_id": "e-1",
        "org_id": "ws-1",
        "occurred_at": "2026-01-01 10:00:00Z",  # valid, but not the plain form
        "user_id": "u-1",
        "model": "m",
        "provider": "p",
    }
    assert activity_fact(event) is None
    assert reference(event) is not None
    assert activity_fact(event | {"occurred_at": "2026-01-01T10:00:00Z"}) == reference(
        event | {"occurred_at": "2026-01-01T10:00:00Z"}
    )


def test_a_type_of_any_json_shape_falls_back() -> None:
    for kind in ([], ["message"], {"a": 1}, None, 1.5):
        assert activity_fact({"type": kind, "org_id": "ws-1"}) is None
