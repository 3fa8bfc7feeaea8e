"""The fold is associative and commutative, and merging equals recomputation."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import codec
from shared.contracts.events import MAX_REQUESTS, MAX_TOKENS, MAX_USD
from shared.domain.aggregate import (
    A_COMPLETION_MAX,
    A_MESSAGES,
    A_PROMPT_MIN,
    A_USERS,
    M_COST,
    M_PROMPT,
    M_REQUESTS,
    U_ACTION_MESSAGES,
    U_BY_ACTION,
    U_BY_ASSISTANT,
    U_CHAT,
    U_COST,
    U_PROMPT,
    U_TOTAL,
    Aggregate,
)
from shared.domain.facts import API_REQUEST, MESSAGE, NANO, PAYG, Fact

# Names as they come: ASCII, and text that is not (astral characters, combining marks,
# right-to-left scripts, zero-width joiners), from a pool (so facts share a user or a
# model and their stats merge) and drawn freely (so there are many users).
EXOTIC = [
    "u1",
    "u2",
    "Zoë",
    "e\u0301te\u0301",  # combining acute accents
    "עברית",
    "مرحبا بالعالم",
    "𝒜𝓈𝓉𝓇𝒶𝓁",
    "🧑\u200d💻",
    "𠜎𠜱",
    "ǅ ß ﬁ Ⅻ",
]
unicode_text = st.text(st.characters(codec="utf-8"), min_size=1, max_size=8)
names = st.one_of(st.sampled_from(EXOTIC), unicode_text)
ids = names
maybe_agent = st.one_of(st.none(), st.sampled_from(["a1", "ä2", "وكيل"]), unicode_text)
maybe_project = st.one_of(st.none(), st.sampled_from(["p1", "プロジェクト"]))
models = st.one_of(st.sampled_from(["gpt-4.1", "claude", "模型-ü", "e\u0301"]), unicode_text)

# Numbers up to the contract's bounds, and beyond them up to the largest a fact may carry
# for the sums of every fact a test folds (three lists of at most 40) to stay within
# 64 bits (orjson's limit; 2**63 and more is stored as unsigned).
MAX_FACTS = 3 * 40
LARGEST = (2**64 - 1) // MAX_FACTS
tokens = st.one_of(
    st.integers(min_value=0, max_value=10_000),
    st.integers(min_value=MAX_TOKENS - 1_000, max_value=MAX_TOKENS),
    st.integers(min_value=LARGEST - 2**40, max_value=LARGEST),
)
money = st.one_of(
    st.integers(0, 10**9),
    st.integers(MAX_USD * NANO - 1_000, MAX_USD * NANO),
    st.integers(LARGEST - 2**40, LARGEST),
)
request_counts = st.one_of(
    st.integers(1, 5), st.integers(MAX_REQUESTS - 10, MAX_REQUESTS), st.just(LARGEST)
)


@st.composite
def message_facts(draw: Any) -> Fact:
    prompt = draw(tokens)
    cached = draw(st.integers(min_value=0, max_value=prompt))
    creation = draw(st.integers(min_value=0, max_value=prompt - cached))
    return (
        MESSAGE,
        draw(st.uuids()).hex,
        draw(st.integers(0, 10**12)),
        draw(ids),
        draw(maybe_agent),
        draw(maybe_project),
        draw(st.one_of(st.sampled_from([None, "c1", "c2", "会話"]), unicode_text)),
        draw(models),
        draw(st.sampled_from(["prov", "プロバイダ"])),
        draw(st.booleans()),
        draw(st.sampled_from(["", "dep-1", "ασία"])),
        draw(st.sampled_from(["WEB", "SLACK", "ÜBER"])),
        sorted(draw(st.sets(st.one_of(st.sampled_from(["canvas", "web_search"]), names)))),
        draw(request_counts),
        prompt,
        draw(tokens),
        cached,
        creation,
        draw(money),
    )


@st.composite
def api_facts(draw: Any) -> Fact:
    return (
        API_REQUEST,
        draw(st.uuids()).hex,
        draw(st.integers(0, 10**12)),
        draw(st.one_of(st.sampled_from(["k1", "k2", "ключ"]), unicode_text)),
        draw(models),
        "prov",
        draw(st.booleans()),
        "",
        "API",
        draw(request_counts),
        draw(tokens),
        draw(tokens),
        0,
        0,
        draw(money),
    )


@st.composite
def payg_facts(draw: Any) -> Fact:
    return (
        PAYG,
        draw(st.uuids()).hex,
        draw(st.integers(0, 10**12)),
        draw(ids),
        draw(money),
    )


facts = st.lists(st.one_of(message_facts(), api_facts(), payg_facts()), max_size=MAX_FACTS // 3)


def fold(items: list[Fact]) -> Aggregate:
    aggregate = Aggregate()
    for fact in items:
        aggregate.add(fact)
    return aggregate


def canonical(aggregate: Aggregate) -> bytes:
    """Order-independent bytes: JSON with sorted keys, models sorted."""
    data = aggregate.to_json()
    data["models"] = sorted(data["models"])
    return codec.dumps_sorted(data)


@settings(max_examples=150, deadline=None)
@given(facts, facts)
def test_merge_equals_folding_everything(left: list[Fact], right: list[Fact]) -> None:
    merged = fold(left)
    merged.merge(fold(right))
    assert canonical(merged) == canonical(fold(left + right))


@settings(max_examples=100, deadline=None)
@given(facts, facts)
def test_merge_is_commutative(left: list[Fact], right: list[Fact]) -> None:
    a = fold(left)
    a.merge(fold(right))
    b = fold(right)
    b.merge(fold(left))
    assert canonical(a) == canonical(b)


@settings(max_examples=100, deadline=None)
@given(facts, facts, facts)
def test_merge_is_associative(x: list[Fact], y: list[Fact], z: list[Fact]) -> None:
    left = fold(x)
    left.merge(fold(y))
    left.merge(fold(z))
    yz = fold(y)
    yz.merge(fold(z))
    right = fold(x)
    right.merge(yz)
    assert canonical(left) == canonical(right)


@settings(max_examples=100, deadline=None)
@given(facts)
def test_json_round_trip_preserves_everything(items: list[Fact]) -> None:
    aggregate = fold(items)
    restored = Aggregate.from_json(codec.loads(codec.dumps(aggregate.to_json())))
    assert canonical(restored) == canonical(aggregate)


@given(facts)
def test_merge_leaves_the_other_side_unchanged(items: list[Fact]) -> None:
    other = fold(items)
    before = canonical(other)
    target = fold(items)
    target.merge(other)
    target.merge(other)
    assert canonical(other) == before


def test_message_counts_land_in_the_right_buckets() -> None:
    chat: Fact = (
        MESSAGE,
        "e1",
        0,
        "u1",
        None,
        None,
        None,
        "m",
        "p",
        False,
        "",
        "WEB",
        [],
        1,
        100,
        10,
        20,
        5,
        7,
    )
    agent: Fact = (
        MESSAGE,
        "e2",
        0,
        "u1",
        "a1",
        None,
        "c1",
        "m",
        "p",
        False,
        "",
        "WEB",
        ["canvas", "web_search"],
        2,
        50,
        30,
        0,
        0,
        3,
    )
    agent2: Fact = (
        MESSAGE,
        "e3",
        0,
        "u2",
        "a1",
        "p1",
        "c1",
        "m",
        "p",
        False,
        "",
        "WEB",
        ["canvas"],
        1,
        70,
        5,
        0,
        0,
        0,
    )
    aggregate = fold([chat, agent, agent2])
    u1 = aggregate.users["u1"]["m"]
    assert (u1[U_TOTAL], u1[U_CHAT], u1[U_ACTION_MESSAGES]) == (2, 1, 1)
    assert u1[U_BY_ASSISTANT] == {"a1": 1}
    assert u1[U_BY_ACTION] == {"canvas": 1, "web_search": 1}
    a1 = aggregate.agents["a1"]["m"]
    assert a1[A_MESSAGES] == 2
    assert a1[A_PROMPT_MIN] == 50
    assert a1[A_COMPLETION_MAX] == 30
    assert a1[A_USERS] == {"u1", "u2"}
    assert aggregate.agent_conversations == {"a1": {"c1"}}
    assert aggregate.projects == {"p1": 1}
    assert aggregate.models[("m", "p", False, "WEB", "")] == [4, 220, 45, 20, 5, 10]


def decoded(items: list[Fact]) -> Aggregate:
    """A stored document as a reader gets it: folded, encoded, decoded."""
    return Aggregate.from_json(codec.loads(codec.dumps(fold(items).to_json())))


@settings(max_examples=100, deadline=None)
@given(facts)
def test_sums_are_exact_up_to_64_bits(items: list[Fact]) -> None:
    """The fold's sums are the exact sums of the facts, however large (up to 2**64 - 1),
    and survive the stored encoding."""
    aggregate = decoded(items)
    calls = [fact for fact in items if fact[0] != PAYG]
    model_rows = aggregate.models.values()
    assert sum(row[M_COST] for row in model_rows) == sum(fact[-1] for fact in calls)
    assert sum(row[M_PROMPT] for row in model_rows) == sum(fact[-5] for fact in calls)
    assert sum(row[M_REQUESTS] for row in model_rows) == sum(fact[-6] for fact in calls)
    payg: dict[str, int] = {}
    for fact in items:
        if fact[0] == PAYG:
            payg[fact[3]] = payg.get(fact[3], 0) + fact[4]
    assert aggregate.payg == payg
    users = {fact[3] for fact in items if fact[0] == MESSAGE}
    assert set(aggregate.users) == users


def maximal_message(index: int, user: str, cost: int) -> Fact:
    """A message with every number at the contract's bound."""
    half = MAX_TOKENS // 2
    return (MESSAGE, f"e{index}", 0, user, "a1", "p1", "c1", "模型", "prov", True, "",
            "WEB", ["canvas"], MAX_REQUESTS, MAX_TOKENS, MAX_TOKENS, half, half, cost)  # fmt: skip


def test_a_day_of_maximal_events_of_one_entity_is_storable() -> None:
    """Contract bounds: 9,223 maximal events of one user, agent and model sum to just
    under 2**63 nano-dollars (docs/decisions.md, "Upper bounds") and are stored exactly."""
    count = 2**63 // (MAX_USD * NANO)
    aggregate = fold([maximal_message(i, "Zoë 𝒜", MAX_USD * NANO) for i in range(count)])
    stats = aggregate.users["Zoë 𝒜"]["模型"]
    assert stats[U_COST] == count * MAX_USD * NANO
    assert 2**63 - MAX_USD * NANO < stats[U_COST] < 2**63
    assert stats[U_PROMPT] == count * MAX_TOKENS
    row = aggregate.models[("模型", "prov", True, "WEB", "")]
    assert row[M_REQUESTS] == count * MAX_REQUESTS
    assert canonical(Aggregate.from_json(codec.loads(codec.dumps(aggregate.to_json())))) == (
        canonical(aggregate)
    )


def test_a_sum_beyond_64_bits_is_refused_not_wrapped() -> None:
    """What happens at overflow: the fold holds the exact (unbounded) sum, and storing it
    fails loudly; ingest's upper bounds keep real days far from it."""
    top = 2**64 - 1
    near = fold([maximal_message(0, "u", top - 1), maximal_message(1, "u", 1)])
    assert near.users["u"]["模型"][U_COST] == top
    assert codec.loads(codec.dumps(near.to_json()))["users"]["u"]["模型"][U_COST] == top
    over = fold([maximal_message(0, "u", top), maximal_message(1, "u", 1)])
    assert over.users["u"]["模型"][U_COST] == 2**64
    with pytest.raises(TypeError, match="64-bit"):
        codec.dumps(over.to_json())
