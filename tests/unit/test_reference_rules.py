"""The oracle's rule book: the money rule and the text limits, each rule on its own, and
the same verdicts from ingest on every boundary case (one rule book for both)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from services.ingest.validation import AcceptedRange, Rejected, read_record
from shared import codec
from shared.domain.facts import API_REQUEST, MESSAGE, PAYG, to_nano
from tests.reference import Invalid, ReferenceResult, cells, money, parse_event, reference_export
from tests.reference.parsing import UPSERT_ID_FIELD, UPSERT_TEXT_FIELDS, Call, Payg, Upsert

# Every instant is a literal, and the oracle and ingest both judge against VALID_AT.
VALID_AT = datetime(2026, 5, 10, 9, 30, tzinfo=UTC)
AT = "2026-04-02T10:00:00Z"
ORG = "ws-rules"
_ids = itertools.count()


def event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"event_id": f"r{next(_ids)}", "type": kind, "org_id": ORG, "occurred_at": AT} | fields


def call(kind: str = "message", **fields: Any) -> dict[str, Any]:
    owner = {"user_id": "u1"} if kind == "message" else {"api_key_id": "k1"}
    return event(kind, model="gpt-4.1", provider="openai", **owner) | fields


def export(events: list[Any], data_type: str) -> dict[str, dict[str, str]]:
    """The rows of an April export of ORG, by their first id column."""
    result: ReferenceResult = reference_export(
        events,
        org_id=ORG,
        data_type=data_type,
        from_date="2026-04-01",
        from_tz="UTC",
        to_date="2026-04-30",
        to_tz="UTC",
        now=VALID_AT,
    )
    key = {"users": "user_id", "api_keys": "api_key_id", "models": "name"}[data_type]
    named = [dict(zip(result.header, row, strict=True)) for row in result.rows]
    return {row[key]: row for row in named}


def ingest_verdict(raw: bytes) -> Any:
    """What ingest makes of a record: its fact, its dimension event, or Rejected."""
    return read_record(raw, AcceptedRange.at(VALID_AT), max_bytes=1024 * 1024)


# ---- money: each amount to whole nano-dollars, half to even -----------------------------
@pytest.mark.parametrize(
    ("amount", "nano"),
    [
        ("0.0000000035", 4),  # a tie: 3.5 -> 4 (even)
        ("0.0000000025", 2),  # a tie: 2.5 -> 2 (even)
        ("0.0000000015", 2),
        ("0.0000000005", 0),  # half a nano-dollar: to 0, the even neighbour
        ("0.0000000004999", 0),
        ("0.0000000005000001", 1),  # just above the tie
        ("0.00000000250000000000000001", 3),  # the exact value, not the nearest double
        ("1E-10", 0),
        ("0", 0),
        ("0.000000001", 1),
        ("0.25", 250_000_000),
        ("123456.1234567895", 123_456_123_456_790),  # 16 digits: a tie, 9 -> 90
        ("999999.9999999995", 1_000_000 * 10**9),  # the largest tie below the bound
        ("1000000", 10**15),
    ],
)
def test_an_amount_becomes_whole_nano_dollars_half_to_even(amount: str, nano: int) -> None:
    assert money.nano(Decimal(amount)) == nano


@pytest.mark.parametrize(
    ("nano", "cell"),
    [
        (0, "0.000000"),
        (499, "0.000000"),
        (500, "0.000000"),  # a tie at the 6th decimal: to even
        (501, "0.000001"),
        (1_500, "0.000002"),
        (2_500, "0.000002"),
        (2_800, "0.000003"),
        (3_500, "0.000004"),
        (10**15, "1000000.000000"),
        (2**64 * 10**9 + 500, "18446744073709551616.000000"),  # far past 64 bits: exact
        (None, ""),
    ],
)
def test_a_money_cell_rounds_the_nano_dollar_sum_to_six_decimals_half_even(
    nano: int | None, cell: str
) -> None:
    assert cells.money(nano) == cell


def test_seven_hundred_half_nano_ties_show_the_rounded_sum() -> None:
    # Exact decimals would give 700 x 0.0000000035 = 0.00000245 -> "0.000002"; the rule
    # rounds each amount first: 700 x 4 nano = 0.0000028 -> "0.000003".
    payg = [event("payg_consumption", user_id="u1", amount=0.0000000035) for _ in range(700)]
    costs = [call("api_request", usage={"cost_usd": 0.0000000035}) for _ in range(700)]
    messages = [call(usage={"cost_usd": 0.0000000025}) for _ in range(700)]
    byok = event("workspace_settings", byok=True)  # users show total_cost_usd with BYOK
    users = export([byok, *payg, *messages], "users")
    assert users["u1"]["payg_consumption_in_period"] == "0.000003"
    assert users["u1"]["total_cost_usd"] == "0.000001"  # 700 x 2 nano; exact: 0.00000175
    assert export(costs, "api_keys")["k1"]["total_cost_usd"] == "0.000003"
    models = export([byok, *costs, *messages], "models")
    assert models["gpt-4.1"]["total_cost_usd"] == "0.000004"  # 2800 + 1400 nano


def test_payg_limit_and_utilisation_follow_the_same_rule() -> None:
    events = [
        event("user_upserted", user_id="u1", payg_limit=0.0000000045),  # 4 nano
        event("user_upserted", user_id="u2", payg_limit=0.0000000005),  # 0 nano: no ratio
        event("payg_consumption", user_id="u1", amount=0.0000000015),  # 2 nano
        event("payg_consumption", user_id="u2", amount=1.5),
    ]
    users = export(events, "users")
    assert users["u1"]["payg_limit_current"] == "0.000000"
    assert users["u1"]["payg_utilization_pct_current"] == "50.00"  # 2 of 4 nano
    assert users["u2"]["payg_limit_current"] == "0.000000"
    assert users["u2"]["payg_utilization_pct_current"] == ""


def test_a_number_is_read_as_its_double_then_rounded() -> None:
    """More digits than a double holds: the amount is the double's shortest form, 2.5e-09,
    a tie that rounds to even (2), not the written text just above the tie (3)."""
    raw = (
        b'{"event_id":"t1","type":"payg_consumption","org_id":"ws-rules","occurred_at":'
        b'"2026-04-02T10:00:00Z","user_id":"u1","amount":0.00000000250000000000000001}'
    )
    parsed = parse_event(raw, valid_at=VALID_AT)
    assert isinstance(parsed, Payg)
    assert parsed.amount_nano == 2
    assert to_nano(codec.loads(raw)["amount"]) == 2


@pytest.mark.parametrize(
    "amount",
    [0.0000000035, 0.0000000025, 0.0000000005, 1e-10, 0.1, 0.3, 123456.1234567895, 2.5e-7, 1e6],
)
def test_ingest_stores_the_nano_dollars_the_oracle_counts(amount: float) -> None:
    for value in (
        call(usage={"cost_usd": amount}),
        call("api_request", usage={"cost_usd": amount}),
        event("payg_consumption", user_id="u1", amount=amount),
    ):
        raw = codec.dumps(value)
        parsed = parse_event(raw, valid_at=VALID_AT)
        oracle = parsed.amount_nano if isinstance(parsed, Payg) else None
        if isinstance(parsed, Call):
            oracle = parsed.cost_nano
        _, fact = ingest_verdict(raw)
        assert fact[0] in (MESSAGE, API_REQUEST, PAYG)
        assert fact[-1] == oracle == money.nano(Decimal(repr(amount)))


# ---- text limits ------------------------------------------------------------------------
def _cases() -> list[tuple[str, dict[str, Any], bool]]:
    """(name, event, valid) on both sides of every limit."""
    cases: list[tuple[str, dict[str, Any], bool]] = []
    for kind in ("message", "api_request"):
        for name in ("model", "provider", "source", "deployment"):
            cases.append((f"{kind}.{name} 256", call(kind, **{name: "m" * 256}), True))
            cases.append((f"{kind}.{name} 257", call(kind, **{name: "m" * 257}), False))
            cases.append((f"{kind}.{name} 256 é", call(kind, **{name: "é" * 256}), True))
        cases.append((f"{kind}.source empty", call(kind, source=""), False))
        cases.append((f"{kind}.source null", call(kind, source=None), True))
        cases.append((f"{kind}.model empty", call(kind, model=""), False))
        cases.append((f"{kind}.deployment empty", call(kind, deployment=""), True))
    cases += [
        ("conversation_id 256", call(conversation_id="c" * 256), True),
        ("conversation_id 257", call(conversation_id="c" * 257), False),
        ("conversation_id empty", call(conversation_id=""), True),
        ("256 actions", call(actions=[f"a{i}" for i in range(256)]), True),
        ("257 actions", call(actions=[f"a{i}" for i in range(257)]), False),
        ("an action of 256", call(actions=["x" * 256]), True),
        ("an action of 257", call(actions=["ok", "x" * 257]), False),
        ("an empty action", call(actions=["canvas", ""]), False),
        # fields a type does not define are ignored, whatever they hold
        ("api_request.actions", call("api_request", actions=["", "x" * 300] * 200), True),
        ("payg.model", event("payg_consumption", user_id="u1", amount=1, model="m" * 300), True),
        ("upsert.source", event("user_upserted", user_id="u1", source=""), True),
    ]
    for kind, texts in UPSERT_TEXT_FIELDS.items():
        entity = {UPSERT_ID_FIELD[kind]: "x1"}
        for name in texts:
            cases.append((f"{kind}.{name} 4096", event(kind, **entity, **{name: "t" * 4096}), True))
            cases.append(
                (f"{kind}.{name} 4097", event(kind, **entity, **{name: "t" * 4097}), False)
            )
            cases.append((f"{kind}.{name} empty", event(kind, **entity, **{name: ""}), True))
    return cases


CASES = _cases()
IDS = [name for name, _, _ in CASES]


@pytest.mark.parametrize(("event_value", "valid"), [c[1:] for c in CASES], ids=IDS)
def test_text_limits_are_oracle_rules(event_value: dict[str, Any], valid: bool) -> None:
    raw = codec.dumps(event_value)
    if valid:
        parsed = parse_event(raw, valid_at=VALID_AT)
        assert isinstance(parsed, Call | Payg | Upsert)
    else:
        with pytest.raises(Invalid):
            parse_event(raw, valid_at=VALID_AT)


@pytest.mark.parametrize(("event_value", "valid"), [c[1:] for c in CASES], ids=IDS)
def test_ingest_gives_the_oracles_verdict_on_every_text_limit(
    event_value: dict[str, Any], valid: bool
) -> None:
    verdict = ingest_verdict(codec.dumps(event_value))
    assert isinstance(verdict, Rejected) is not valid, verdict


def test_the_limits_count_characters_and_keep_the_text() -> None:
    parsed = parse_event(
        codec.dumps(call(source="é" * 256, actions=["李" * 256, "李" * 256])), valid_at=VALID_AT
    )
    assert isinstance(parsed, Call)
    assert parsed.source == "É" * 256
    assert parsed.actions == frozenset({"李" * 256})
