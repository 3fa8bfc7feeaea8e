"""The typed batch decoder says what ``read_record`` says of every record — the same row,
dimension version or rejection (reason and text) — and its columns are the FACTS rows of
the models' facts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.decode import DecodedBatch, decode_batch
from services.ingest.validation import (
    AcceptedRange,
    Rejected,
    read_record,
    to_fact,
    validate_record,
)
from shared.columnar.schema import FACTS, facts_table
from shared.contracts.events import MAX_REQUESTS, MAX_TOKENS, MAX_USD
from shared.domain.dimensions import DimensionEvent, dimension_update, occurred_ms
from shared.simulation import SimConfig, simulate
from tests.unit.event_strategies import events as activity_events

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)  # a fixed instant: no clock is read
RANGE = AcceptedRange.at(NOW)
MAX_BYTES = 1 << 20
INSIDE = "2026-11-01T10:00:00+05:30"


def expected(values: list[bytes | None], max_bytes: int = MAX_BYTES) -> list[tuple[Any, ...]]:
    """Per record, what ``read_record`` says: ("fact", org, fact), ("dim", org, version) or
    ("rejected", reason, detail)."""
    outcomes: list[tuple[Any, ...]] = []
    for value in values:
        result = read_record(value, RANGE, max_bytes=max_bytes)
        if type(result) is tuple:
            outcomes.append(("fact", *result))
        elif isinstance(result, Rejected):
            outcomes.append(("rejected", result.reason, result.detail))
        else:
            event: DimensionEvent = result  # type: ignore[assignment]
            kind, entity, attributes = dimension_update(event)
            version = (kind, entity, occurred_ms(event), event.event_id, attributes)
            outcomes.append(("dim", event.org_id, version))
    return outcomes


def assert_equivalent(values: list[bytes | None], max_bytes: int = MAX_BYTES) -> DecodedBatch:
    batch = decode_batch(values, RANGE, max_bytes=max_bytes)
    want = expected(values, max_bytes)
    facts = [(index, outcome) for index, outcome in enumerate(want) if outcome[0] == "fact"]
    assert batch.fact_records == [index for index, _ in facts]
    want_table = pa.concat_tables(
        [facts_table("ws-none", [])] + [facts_table(org, [fact]) for _, (_, org, fact) in facts]
    )
    assert batch.facts.schema == FACTS
    assert batch.facts.to_pylist() == want_table.to_pylist()
    assert batch.facts.equals(want_table)
    assert batch.dimensions == [
        (index, outcome[1], outcome[2]) for index, outcome in enumerate(want) if outcome[0] == "dim"
    ]
    assert [(index, r.reason, r.detail) for index, r in batch.rejected] == [
        (index, outcome[1], outcome[2])
        for index, outcome in enumerate(want)
        if outcome[0] == "rejected"
    ]
    return batch


# --- strategies: valid events of every type, then one field set to an edge value --------

BASES: dict[str, dict[str, Any]] = {
    "message": {
        "user_id": "u-1",
        "model": "gpt-4.1",
        "provider": "openai",
        "assistant_id": "a-1",
        "project_id": "p-1",
        "conversation_id": "c-1",
        "source": "slack",
        "actions": ["canvas", "canvas", "web"],
        "byok": True,
        "deployment": "dep-1",
        "requests": 2,
        "usage": {
            "prompt_tokens": 100,
            "completion_tokens": 5,
            "cached_prompt_tokens": 40,
            "cache_creation_tokens": 10,
            "cost_usd": 0.000123,
        },
    },
    "api_request": {
        "api_key_id": "k-1",
        "model": "m",
        "provider": "p",
        "source": "cli",
        "byok": False,
        "deployment": None,
        "requests": 3,
        "usage": {"prompt_tokens": 7, "cost_usd": 12},
    },
    "payg_consumption": {"user_id": "u-1", "amount": 1.25},
    "user_upserted": {
        "user_id": "u-1",
        "name": "Zoë",
        "email": "z@example.com",
        "role": "admin",
        "joined_at": "2025-02-19",
        "department": "R&D",
        "company_name": "Ünïcode GmbH",
        "license_type": "pro",
        "payg_limit": 20.5,
        "deleted": False,
    },
    "agent_upserted": {
        "assistant_id": "a-1",
        "name": "Helper",
        "description": "helps",
        "url": "https://x",
        "owner_id": "u-1",
        "owner_email": "o@example.com",
        "deleted": False,
    },
    "project_upserted": {
        "project_id": "p-1",
        "name": "P",
        "owner_id": "u-1",
        "owner_email": "o@example.com",
        "deleted": True,
    },
    "api_key_upserted": {"api_key_id": "k-1", "name": "ci", "deleted": False},
    "workspace_settings": {"byok": True, "user_level_data": False},
}
FIELDS = sorted(
    {key for base in BASES.values() for key in base} | {"type", "event_id", "org_id", "occurred_at"}
)

TEXT_EDGES = [
    "",
    "x" * 256,
    "x" * 257,
    "x" * 4096,
    "x" * 4097,
    "é" * 256,
    "é" * 257,
    "😀" * 256,
    "😀" * 257,
    "ß",
    "\u0430",
    "line\n",
    "\x00",
]
TIME_EDGES = [
    INSIDE,
    "2026-11-01T10:00:00+0530",
    "2026-11-01T10:00:00Z",
    "2026-11-01T10:00:00.123456-03:30",
    "2026-11-01T10:00:00.1234567Z",
    "2026-11-01T10:00:00",
    "2026-11-01",
    "2026-11-01 10:00:00Z",
    "2026-11-01t10:00:00z",
    "2026-11-01T10:00Z",
    "2026-02-29T00:00:00Z",
    "2026-11-01T10:00:00+24:00",
    "2026-11-01T10:00:00-00:00",
    "2026-11-01T10:00:60Z",
    "2026-11-01T10:00:00Z\n",
    "２０２６-11-01T10:00:00Z",
    "2025-11-21T00:00:00Z",  # the oldest accepted day
    "2025-11-20T23:59:59.999Z",  # one millisecond too old
    (NOW + timedelta(hours=24)).isoformat(),  # the newest accepted instant
    (NOW + timedelta(hours=24, milliseconds=1)).isoformat(),
    1_700_000_000,
    "1793527200",
    "2026-11-01T10:00:00+05",
    "2026-11-01T10:00:00+00:60",
    "2026-11-01T10:00:00+23:59",
    "2026-11-01T10:00:00-23:59",
    "2026-11-01T10:00:00,5Z",
    "2026-11-01t10:00:00Z",
    "2026-11-01T10:00:00z",
    "2026-11-01X10:00:00Z",
    "2026-11-01T10:00:00.123456789+05:30",
]
ID_EDGES = ["u-1", "a", "u..1", "-u", "u/1", "x" * 128, "x" * 129, "ｕ", "u 1", "u-1\n", "u:1.2_3"]
NUMBER_EDGES = [
    0,
    -1,
    1,
    MAX_REQUESTS,
    MAX_REQUESTS + 1,
    MAX_TOKENS,
    MAX_TOKENS + 1,
    MAX_USD,
    MAX_USD + 1,
    2**63 - 1,
    2**63,
    -(2**63),
    -(2**63) - 1,
    2**64,
    10**30,
    1.0,
    0.1,
    1e-12,
    0.0000000015,
    1234.567890123,
    -0.0,
    1e308,
    float("nan"),
    float("inf"),
]
OTHER_EDGES = [
    None,
    True,
    False,
    [],
    {},
    ["a", "a"],
    ["x" * 257],
    ["é"] * 256,
    ["é"] * 257,
    [None],
    {"prompt_tokens": 5, "cached_prompt_tokens": 3, "cache_creation_tokens": 3},
    {"prompt_tokens": 6, "cached_prompt_tokens": 3, "cache_creation_tokens": 3, "x": 1},
    {"prompt_tokens": None, "cost_usd": None},
    {"prompt_tokens": 1.0},
    "message",
    "teleport",
    "Message",
    "2025-02-19T07:00:00.000-05:00",
    "2025-02-30",
    "2025-02-19T00:00:00",
]
EDGES = st.one_of(
    st.sampled_from(TEXT_EDGES + TIME_EDGES + ID_EDGES + NUMBER_EDGES + OTHER_EDGES),
    st.integers(),
    st.floats(),
    st.text(max_size=8),
)

SMALL = st.one_of(st.integers(-1, 12), st.sampled_from([MAX_TOKENS, MAX_TOKENS + 1, None, 1.0]))
USAGES = st.fixed_dictionaries(
    {},
    optional={
        "prompt_tokens": SMALL,
        "completion_tokens": SMALL,
        "cached_prompt_tokens": SMALL,
        "cache_creation_tokens": SMALL,
        "cost_usd": st.one_of(st.floats(-1, MAX_USD + 1), st.integers(-1, MAX_USD + 1), EDGES),
    },
)


@st.composite
def timestamp_shapes(draw: st.DrawFn) -> str:
    """An instant of the accepted range spelled as RFC 3339 allows it, or almost: each
    part drawn from spellings the contract accepts (T/t, Z/z, ±hh:mm, fractions) and ones
    RFC 3339 forbids (a space, +0530, +05, +00:60, no seconds, a decimal comma)."""
    moment = draw(st.datetimes(min_value=datetime(2025, 11, 21), max_value=datetime(2026, 11, 23)))
    day, clock = moment.strftime("%Y-%m-%d"), moment.strftime("%H:%M")
    seconds = draw(st.sampled_from(["", moment.strftime(":%S")] + [moment.strftime(":%S")] * 3))
    fraction = draw(st.sampled_from(["", "", ".5", ".123", ".123456", ".1234567", ",5", "."]))
    separator = draw(st.sampled_from(["T", "T", "t", " ", "_"]))
    allowed = ["Z", "z", "+05:30", "-03:30", "+00:00", "-00:00", "+23:59", "+14:00"]
    forbidden = ["+0530", "+05", "+00:60", "+24:00", "+5:30", "", " Z", "Z\n"]
    offset = draw(st.sampled_from([*allowed, *forbidden]))
    return f"{day}{separator}{clock}{seconds}{fraction if seconds else ''}{offset}"


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(sorted(BASES)))
    plain = st.datetimes(min_value=datetime(2025, 11, 21), max_value=datetime(2026, 11, 23)).map(
        lambda moment: moment.replace(tzinfo=UTC).isoformat()
    )
    event: dict[str, Any] = {
        "event_id": draw(st.from_regex(r"[A-Za-z0-9._:-]{1,12}", fullmatch=True)),
        "type": kind,
        "org_id": draw(st.sampled_from(["ws-1", "ws-2"])),
        "occurred_at": draw(plain | timestamp_shapes()),
    } | BASES[kind]
    own = sorted(event)  # mostly the event's own fields: another type's is an unknown one
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(own) | st.sampled_from([*FIELDS, "unknown"]))
        if draw(st.integers(0, 5)) == 0:
            event.pop(key, None)
        else:
            event[key] = draw(st.one_of(EDGES, USAGES) if key == "usage" else EDGES)
    return event


def encode(event: Any, how: int) -> bytes:
    """JSON text of ``event``, three ways (stdlib escapes lone surrogates, keeps big ints,
    writes NaN): each an input the decoders must agree on."""
    if how == 0:
        try:
            return orjson.dumps(event)
        except TypeError:  # orjson.JSONEncodeError: a lone surrogate, an int past 64 bits
            pass
    return json.dumps(event, ensure_ascii=how == 1).encode("utf-8", "surrogatepass")


RAW_EDITS = st.sampled_from(
    [
        lambda value: value,
        lambda value: value[: len(value) // 2],
        lambda value: b"\xef\xbb\xbf" + value,
        lambda value: b" \n" + value + b"\n ",
        lambda value: value + b"x",
        lambda value: value[:-1] + b',"zz":"\xff"}',
        lambda value: value[:-1] + b',"zz":1e400}',
        lambda value: value[:-1] + b',"zz":' + b"[" * 1100 + b"]" * 1100 + b"}",
        lambda value: value[:-1] + b',"zz":{"a":[1,{"b":"\\u00e9"}]}}',
        lambda value: value[:-1] + b',"type":"api_request"}',
        lambda value: value[:-1] + b',"type":"message"}',
        lambda value: value[:-1] + b',"org_id":"ws-3"}',
        lambda value: value[:-1] + b',"org_id":null}',
        lambda value: value.replace(b'"type"', b'"t\\u0079pe"', 1),
        lambda value: value.replace(b"e", b"\xc3\xa9", 1),
        lambda value: value.replace(b"u", b"\xed\xa0\x80", 1),
        lambda value: b"[" + value + b"]",
    ]
)


@st.composite
def records(draw: st.DrawFn) -> bytes | None:
    source = draw(st.integers(0, 9))
    if source == 0:
        return None
    event = draw(activity_events() if source == 1 else mutated_events())
    value = encode(event, draw(st.integers(0, 2)))
    return draw(RAW_EDITS)(value) if draw(st.integers(0, 3)) == 0 else value


@settings(max_examples=1500, deadline=None)
@given(values=st.lists(records(), min_size=1, max_size=6), small=st.booleans())
def test_the_decoder_says_what_read_record_says_of_every_record(
    values: list[bytes | None], small: bool
) -> None:
    # max_bytes at a value's length, and one below it, in some batches
    sizes = sorted(len(value) for value in values if value is not None)
    max_bytes = max(1, sizes[len(sizes) // 2]) if small and sizes else MAX_BYTES
    assert_equivalent(values, max_bytes)


@settings(max_examples=400, deadline=None)
@given(
    kind=st.sampled_from(["message", "api_request"]),
    usage=USAGES,
    amount=st.one_of(st.floats(0, MAX_USD), st.integers(0, MAX_USD), EDGES),
)
def test_usage_and_money_as_the_models_read_them(kind: str, usage: Any, amount: Any) -> None:
    event = {"event_id": "e-1", "type": kind, "org_id": "ws-1", "occurred_at": INSIDE}
    payg = {"event_id": "e-2", "type": "payg_consumption", "org_id": "ws-1", "occurred_at": INSIDE}
    payg |= {"user_id": "u-1", "amount": amount}
    assert_equivalent([encode(event | BASES[kind] | {"usage": usage}, 2), encode(payg, 2)])


def test_edge_values_one_by_one() -> None:
    """Each edge value in each field of each type, deterministically (the property test
    samples them)."""
    values: list[bytes | None] = []
    for kind, base in BASES.items():
        event = {"event_id": "e-1", "type": kind, "org_id": "ws-1", "occurred_at": INSIDE}
        event |= base
        values.append(encode(event, 0))
        for key in [*FIELDS, "unknown"]:
            for edge in TEXT_EDGES + TIME_EDGES + ID_EDGES + NUMBER_EDGES + OTHER_EDGES:
                values.append(encode(event | {key: edge}, 2))
            values.append(encode({name: item for name, item in event.items() if name != key}, 0))
    batch = assert_equivalent(values)
    reasons = {rejected.reason for _, rejected in batch.rejected}
    assert reasons >= {"invalid_json", "invalid_event", "unknown_type", "too_old"}
    assert "too_far_in_future" in reasons
    assert batch.facts.num_rows > 100
    assert len(batch.dimensions) > 100


def test_empty_oversized_and_not_objects_are_read_records_rejections() -> None:
    value = encode({"type": "payg_consumption", "amount": 1}, 0)
    batch = assert_equivalent([None, value, b"[1]", b"", b"{not json"], max_bytes=len(value) - 1)
    assert [rejected.reason for _, rejected in batch.rejected] == [
        "empty_value",
        "oversized",
        "invalid_event",
        "invalid_json",
        "invalid_json",
    ]


def test_json_nested_too_deeply_is_rejected_not_raised() -> None:
    """msgspec raises RecursionError past its depth limit (found by the fault suite: it
    stopped ingest); such a record goes to the models, which call it invalid JSON."""
    arrays = b'{"type":' + b"[" * 20_000 + b"1" + b"]" * 20_000 + b',"org_id":"ws-1"}'
    objects = b'{"type":' + b'{"a":' * 20_000 + b"1" + b"}" * 20_000 + b"}"
    batch = assert_equivalent([arrays, objects], max_bytes=1 << 20)
    assert [rejected.reason for _, rejected in batch.rejected] == ["invalid_json"] * 2


def test_offsets_need_their_colon_and_stay_in_range() -> None:
    """RFC 3339 (contract §2): ``+05:30`` is read by the structs, lower case ``t``/``z``
    by the models; ``+0530``, ``+05``, a space for ``T`` and ``+00:60`` (which
    ``fromisoformat`` would read as +01:00) are refused by both, with the models' text."""
    event = {"event_id": "e-1", "type": "payg_consumption", "org_id": "ws-1", "amount": 2}
    event["user_id"] = "u-1"
    accepted = ["2026-11-01T10:00:00+05:30", "2026-11-01t04:30:00z"]
    refused = [
        "2026-11-01T10:00:00+0530",
        "2026-11-01T10:00:00+05",
        "2026-11-01 10:00:00+05:30",
        "2026-11-01T05:30:00+00:60",
    ]
    values: list[bytes | None] = [encode(event | {"occurred_at": at}, 0) for at in accepted]
    values += [encode(event | {"occurred_at": at}, 0) for at in refused]
    batch = assert_equivalent(values)
    assert batch.by_models == 1 + len(refused)  # the structs take only the plain form
    instant = datetime(2026, 11, 1, 4, 30, tzinfo=UTC).timestamp() * 1000
    assert batch.facts.column("occurred_ms").to_pylist() == [instant] * 2
    assert [index for index, _ in batch.rejected] == [2, 3, 4, 5]
    assert {rejected.reason for _, rejected in batch.rejected} == {"invalid_event"}
    assert all("RFC 3339" in rejected.detail for _, rejected in batch.rejected)


def test_unknown_fields_are_accepted_through_the_models() -> None:
    event = {"event_id": "e-1", "type": "message", "org_id": "ws-1", "occurred_at": INSIDE}
    event |= BASES["message"]
    batch = assert_equivalent([encode(event, 0), encode(event | {"new_field": [1, 2]}, 0)])
    assert batch.facts.num_rows == 2
    assert batch.by_models == 1


def test_the_columns_are_the_facts_of_the_models() -> None:
    """A simulated workspace (one org): the decoder's table is exactly ``facts_table`` of
    ``fact_from_*`` of the validated models, and only rejections took the models' path."""
    config = SimConfig(seed=5, orgs=1, events=4000, end=NOW, invalid_rate=0.03)
    values: list[bytes | None] = [record.value for record in simulate(config, now=NOW)]
    facts = []
    rejections = 0
    for value in values:
        event = validate_record(value, RANGE, max_bytes=MAX_BYTES)
        if isinstance(event, Rejected):
            rejections += 1
            continue
        fact = to_fact(event)
        if fact is not None:
            facts.append(fact)
            org_id = event.org_id
    batch = decode_batch(values, RANGE, max_bytes=MAX_BYTES)
    assert batch.facts.equals(facts_table(org_id, facts))
    assert len(facts) > 3000
    assert rejections > 50
    assert len(batch.rejected) == rejections
    assert batch.by_models == rejections  # every valid simulated event took the structs
    assert len(batch.dimensions) == len(values) - len(facts) - rejections


def test_an_empty_batch_is_an_empty_table() -> None:
    batch = decode_batch([], RANGE, max_bytes=MAX_BYTES)
    assert batch.facts.schema == FACTS
    assert batch.facts.num_rows == 0
    assert (batch.fact_records, batch.dimensions, batch.rejected) == ([], [], [])
