"""Hypothesis strategies for malformed usage events and export requests.

Each item starts as a well-formed event or request and is broken one way: a field of the
wrong type, a field missing, a huge string, deep nesting, invalid UTF-8, a 10 MiB value,
an unknown type, a hostile id, not JSON at all, JSON that is not an object, or no value.
Big payloads are built from a drawn *size* (Hypothesis cannot draw megabytes itself).
Whether an item is valid after all is decided by the oracle (``tests.reference``), not
by the mutation: some mutations (a null optional field, say) leave a valid event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from shared import codec
from tests.reference import Invalid, parse_event

MIB = 1024 * 1024
HOSTILE_IDS = (
    "../ws-other",
    "ws-a/../../ws-b",
    "ws-a/x",
    "..",
    "ws..a",
    "/etc/passwd",
    "ws-a\\x",
    "ws-a\x00",
    "ws-a\n",
    "ws-a\r\nX-Injected: 1",
    "ws-\u0430",  # Cyrillic a
    "ws\u2215a",  # division slash
    "ws\uff0fa",  # fullwidth solidus
    "ws-a\u202e",  # right-to-left override
    "ws-a\u200b",  # zero-width space
    "ｗｓ-a",  # fullwidth letters
    "ws-a%2F..%2Fws-b",
    " ws-a",
    "-ws-a",
    "",
    "x" * 129,
)
_PLACEHOLDER = "\x00placeholder\x00"
_PLACEHOLDER_JSON = codec.dumps(_PLACEHOLDER)
# Any magnitude JSON (and orjson) can carry: numbers beyond the upper bounds of
# docs/decisions.md must be dead-lettered, not stop ingest (tests/unit/test_number_limits.py).
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from((10**6, 10**6 + 1, 10**9, 10**9 + 1, 1e6, 1.000001e6, 2e7, 2**63)),
    st.text(max_size=12),
)
_WRONG = st.one_of(
    _SCALARS,
    st.lists(_SCALARS, max_size=3),
    st.dictionaries(st.text(max_size=5), _SCALARS, max_size=2),
)
_INVALID_UTF8 = (b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80abc", b"\xf0\x28\x8c\x28")
# Sizes straddle the limits: the contract's text limits (256, 4096), 1 MiB, 10 MiB.
_HUGE = (257, 4097, 70_000, MIB + 1, 10 * MIB)
_DEPTHS = (64, 256, 1025, 20_000)
EVENT_KINDS = (
    "message",
    "api_request",
    "payg_consumption",
    "user_upserted",
    "agent_upserted",
    "workspace_settings",
)
MUTATIONS = (
    "wrong_type",
    "missing_field",
    "huge_string",
    "deep_nesting",
    "invalid_utf8",
    "ten_mib",
    "unknown_type",
    "hostile_id",
    "not_json",
    "not_object",
    "no_value",
    "none",  # left well-formed: the stream is not all garbage
)


@dataclass(frozen=True, repr=False)
class BadItem:
    key: bytes | None
    value: bytes | None
    mutation: str
    detail: str

    def __repr__(self) -> str:
        # Short: Hypothesis keeps the repr of every draw, and values reach 10 MiB.
        size = "no value" if self.value is None else f"{len(self.value)} bytes"
        head = self.value[:60] if self.value is not None else b""
        return f"BadItem({self.mutation}, {self.detail[:60]!r}, {size}, {head!r}...)"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


def base_event(kind: str, number: int, org_id: str, at: datetime) -> dict[str, Any]:
    common: dict[str, Any] = {
        "event_id": f"fz-{number}",
        "type": kind,
        "org_id": org_id,
        "occurred_at": at.isoformat().replace("+00:00", "Z"),
    }
    call = {"model": "gpt-4.1", "provider": "openai", "byok": False, "requests": 2}
    usage = {"prompt_tokens": 100, "completion_tokens": 5, "cached_prompt_tokens": 10,
             "cost_usd": 0.25}  # fmt: skip
    fields: dict[str, dict[str, Any]] = {
        "message": call | {"user_id": f"u{number % 5}", "assistant_id": "a1",
                           "conversation_id": "c1", "actions": ["canvas"], "usage": usage},
        "api_request": call | {"api_key_id": f"k{number % 3}", "usage": usage},
        "payg_consumption": {"user_id": f"u{number % 5}", "amount": 1.5},
        "user_upserted": {"user_id": f"u{number % 5}", "name": "Ada", "email": "a@x.io",
                          "payg_limit": 10.0},
        "agent_upserted": {"assistant_id": "a1", "name": "Agent", "owner_email": "o@x.io"},
        "workspace_settings": {"byok": True, "user_level_data": True},
    }  # fmt: skip
    return common | fields[kind]


@st.composite
def bad_events(draw: st.DrawFn, *, number: int, org_id: str, now: datetime) -> BadItem:
    kind = draw(st.sampled_from(EVENT_KINDS))
    at = now - timedelta(days=draw(st.integers(min_value=1, max_value=20)))
    event = base_event(kind, number, org_id, at)
    mutation = draw(st.sampled_from(MUTATIONS))
    key: bytes | None = org_id.encode()
    fields = sorted(event)
    if mutation == "wrong_type":
        field = draw(st.sampled_from([*fields, "usage.prompt_tokens", "usage.cost_usd"]))
        wrong = draw(_WRONG)
        _set(event, field, wrong)
        return BadItem(key, codec.dumps(event), mutation, f"{field}={wrong!r}"[:80])
    if mutation == "missing_field":
        field = draw(st.sampled_from(fields))
        del event[field]
        return BadItem(key, codec.dumps(event), mutation, field)
    if mutation in ("huge_string", "deep_nesting", "invalid_utf8"):
        field = draw(st.sampled_from(fields))
        event[field] = _PLACEHOLDER
        if mutation == "huge_string":
            size = draw(st.sampled_from(_HUGE[:-1]))
            filler = codec.dumps("é" * (size // 2) if draw(st.booleans()) else "x" * size)
        elif mutation == "deep_nesting":
            depth = draw(st.sampled_from(_DEPTHS))
            opener = draw(st.sampled_from((b"[", b'{"a":')))
            closer = b"]" if opener == b"[" else b"}"
            filler = opener * depth + b"1" + closer * depth
        else:
            filler = b'"x' + draw(st.sampled_from(_INVALID_UTF8)) + b'y"'
        value = codec.dumps(event).replace(_PLACEHOLDER_JSON, filler)
        return BadItem(key, value, mutation, f"{field} ({len(filler)} bytes)")
    if mutation == "ten_mib":
        how = draw(st.sampled_from(("padding_field", "whitespace", "garbage")))
        if how == "padding_field":
            value = codec.dumps(event | {"padding": "x" * (10 * MIB)})
        elif how == "whitespace":
            value = codec.dumps(event) + b" " * (10 * MIB)
        else:
            value = b"\x00\xff" * (5 * MIB)
        return BadItem(key, value, mutation, how)
    if mutation == "unknown_type":
        unknown = st.sampled_from(("invoice", "Message", "message ", "MESSAGE", ""))
        event["type"] = draw(st.one_of(unknown, st.text(max_size=10)))
        return BadItem(key, codec.dumps(event), mutation, repr(event["type"]))
    if mutation == "hostile_id":
        field = draw(st.sampled_from(("org_id", *[f for f in fields if f.endswith("_id")])))
        event[field] = draw(st.one_of(st.sampled_from(HOSTILE_IDS), st.text(max_size=20)))
        if field == "org_id":
            key = draw(st.sampled_from((key, str(event[field]).encode("utf-8", "replace"))))
        return BadItem(key, codec.dumps(event), mutation, f"{field}={event[field]!r}")
    if mutation == "not_json":
        return BadItem(key, draw(st.binary(min_size=1, max_size=200)), mutation, "")
    if mutation == "not_object":
        return BadItem(key, codec.dumps(draw(_WRONG)), mutation, "")
    if mutation == "no_value":
        return BadItem(key, draw(st.sampled_from((None, b""))), mutation, "")
    return BadItem(key, codec.dumps(event), mutation, kind)


def _set(event: dict[str, Any], path: str, value: Any) -> None:
    if "." in path:
        outer, inner = path.split(".", 1)
        nested = event.get(outer)
        event[outer] = (dict(nested) if isinstance(nested, dict) else {}) | {inner: value}
    else:
        event[path] = value


def event_is_valid(value: bytes | None, *, valid_at: datetime) -> bool:
    """The oracle's verdict (text limits included: ``tests.reference``, decision 4)."""
    if not value:
        return False
    try:
        parse_event(value, valid_at=valid_at)
    except Invalid:
        return False
    return True


def base_request(number: int, org_id: str, start: str, end: str) -> dict[str, Any]:
    return {
        "request_id": f"{number:08d}-fz",  # unique in its first 8 characters (file names)
        "org_id": org_id,
        "data_type": "users",
        "from": {"date": start, "timezone": "UTC"},
        "to": {"date": end, "timezone": "Europe/Berlin"},
        "group_by": None,
        "requested_by": "fuzzer",
    }


@st.composite
def bad_requests(draw: st.DrawFn, *, number: int, org_id: str, start: str, end: str) -> BadItem:
    request = base_request(number, org_id, start, end)
    mutation = draw(st.sampled_from(MUTATIONS))
    key: bytes | None = org_id.encode()
    fields = [*sorted(request), "from.date", "from.timezone", "to.date", "to.timezone"]
    if mutation == "wrong_type":
        field = draw(st.sampled_from(fields))
        wrong = draw(_WRONG)
        _set(request, field, wrong)
        return BadItem(key, codec.dumps(request), mutation, f"{field}={wrong!r}"[:80])
    if mutation == "missing_field":
        field = draw(st.sampled_from(sorted(request)))
        del request[field]
        return BadItem(key, codec.dumps(request), mutation, field)
    if mutation in ("huge_string", "deep_nesting", "invalid_utf8"):
        field = draw(st.sampled_from([f for f in sorted(request) if f != "request_id"]))
        request[field] = _PLACEHOLDER
        if mutation == "huge_string":
            filler = codec.dumps("x" * draw(st.sampled_from(_HUGE[:-1])))
        elif mutation == "deep_nesting":
            depth = draw(st.sampled_from(_DEPTHS))
            filler = b"[" * depth + b"]" * depth
        else:
            filler = b'"x' + draw(st.sampled_from(_INVALID_UTF8)) + b'y"'
        value = codec.dumps(request).replace(_PLACEHOLDER_JSON, filler)
        return BadItem(key, value, mutation, f"{field} ({len(filler)} bytes)")
    if mutation == "ten_mib":
        value = codec.dumps(request | {"padding": "x" * (10 * MIB)})
        return BadItem(key, value, mutation, "padding_field")
    if mutation == "unknown_type":
        request["data_type"] = draw(
            st.one_of(st.sampled_from(("invoices", "Users", "users ", "")), st.text(max_size=8))
        )
        return BadItem(key, codec.dumps(request), mutation, repr(request["data_type"]))
    if mutation == "hostile_id":
        field = draw(st.sampled_from(("org_id", "request_id")))
        request[field] = draw(st.one_of(st.sampled_from(HOSTILE_IDS), st.text(max_size=20)))
        return BadItem(key, codec.dumps(request), mutation, f"{field}={request[field]!r}")
    if mutation == "not_json":
        return BadItem(key, draw(st.binary(min_size=1, max_size=200)), mutation, "")
    if mutation == "not_object":
        return BadItem(key, codec.dumps(draw(_WRONG)), mutation, "")
    if mutation == "no_value":
        return BadItem(key, draw(st.sampled_from((None, b""))), mutation, "")
    return BadItem(key, codec.dumps(request), mutation, "valid")


def readable_request_id(value: bytes | None, *, max_bytes: int) -> str | None:
    """The request id a request must be answered under (a completion is then due), or
    None when the value is not a request at all (dead-lettered, no completion due).

    Valid JSON is what the oracle takes it to be (``tests.reference``, decision 1: what
    orjson parses, so at most 1024 levels deep); the id rule is the contract's pattern."""
    if not value or len(value) > max_bytes:
        return None
    try:
        payload = codec.loads(value)
    except codec.JSONDecodeError:
        return None
    if not isinstance(payload, dict):
        return None
    request_id = payload.get("request_id")
    if isinstance(request_id, str) and _is_id(request_id):
        return request_id
    return None


def _is_id(value: str) -> bool:
    return (
        0 < len(value) <= 128
        and value.isascii()
        and value[0].isalnum()
        and all(ch.isalnum() or ch in "_.:-" for ch in value)
        and ".." not in value
    )
