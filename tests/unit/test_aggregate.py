"""The fold is associative and commutative, and merging equals recomputation."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shared import codec
from shared.domain.aggregate import (
    A_COMPLETION_MAX,
    A_MESSAGES,
    A_PROMPT_MIN,
    A_USERS,
    U_ACTION_MESSAGES,
    U_BY_ACTION,
    U_BY_ASSISTANT,
    U_CHAT,
    U_TOTAL,
    Aggregate,
)
from shared.domain.aggregate_absorb import absorb
from shared.domain.facts import API_REQUEST, MESSAGE, PAYG, Fact

ids = st.sampled_from(["u1", "u2", "u3"])
maybe_agent = st.sampled_from([None, "a1", "a2"])
maybe_project = st.sampled_from([None, "p1"])
tokens = st.integers(min_value=0, max_value=10_000)


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
        draw(st.sampled_from([None, "c1", "c2"])),
        draw(st.sampled_from(["gpt-4.1", "claude"])),
        "prov",
        draw(st.booleans()),
        draw(st.sampled_from(["", "dep-1"])),
        draw(st.sampled_from(["WEB", "SLACK"])),
        draw(st.lists(st.sampled_from(["canvas", "web_search"]), unique=True)),
        draw(st.integers(1, 3)),
        prompt,
        draw(tokens),
        cached,
        creation,
        draw(st.integers(0, 10**9)),
    )


@st.composite
def api_facts(draw: Any) -> Fact:
    return (
        API_REQUEST,
        draw(st.uuids()).hex,
        draw(st.integers(0, 10**12)),
        draw(st.sampled_from(["k1", "k2"])),
        draw(st.sampled_from(["gpt-4.1", "claude"])),
        "prov",
        draw(st.booleans()),
        "",
        "API",
        draw(st.integers(1, 5)),
        draw(tokens),
        draw(tokens),
        0,
        0,
        draw(st.integers(0, 10**9)),
    )


@st.composite
def payg_facts(draw: Any) -> Fact:
    return (
        PAYG,
        draw(st.uuids()).hex,
        draw(st.integers(0, 10**12)),
        draw(ids),
        draw(st.integers(0, 10**12)),
    )


facts = st.lists(st.one_of(message_facts(), api_facts(), payg_facts()), max_size=40)


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
    chat = (
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
    agent = (
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
    agent2 = (
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
    """A stored document as the exporter gets it: folded, encoded, decoded."""
    return Aggregate.from_json(codec.loads(codec.dumps(fold(items).to_json())))


@settings(max_examples=150, deadline=None)
@given(facts, facts, facts)
def test_absorbing_decoded_documents_equals_folding_everything(
    x: list[Fact], y: list[Fact], z: list[Fact]
) -> None:
    into = decoded(x)  # adopted, as the exporter adopts the first document
    absorb(into, decoded(y))
    absorb(into, decoded(z))
    absorb(into, Aggregate())
    assert canonical(into) == canonical(fold(x + y + z))
