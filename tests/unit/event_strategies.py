"""Hypothesis strategies of usage events as JSON objects: valid, odd and malformed
values of every activity field, for the equivalence tests of the typed decoder against
the pydantic models (``tests/unit/test_ingest_decode.py``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hypothesis import strategies as st

from shared.contracts.events import MAX_REQUESTS, MAX_TOKENS, MAX_USD

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
