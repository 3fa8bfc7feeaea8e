"""A day state folds each event once, whatever is delivered again."""

from __future__ import annotations

from datetime import date

from shared import codec
from shared.domain.facts import MESSAGE, decode_facts, encode_facts
from shared.storage.days import DayState, encode_head, parse_head, split_head


def fact(event_id: str, user: str = "u1") -> tuple[object, ...]:
    return (
        MESSAGE,
        event_id,
        1000,
        user,
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
        10,
        1,
        0,
        0,
        5,
    )


def test_redelivered_facts_are_dropped() -> None:
    state = DayState(org_id="ws-1", day=date(2026, 1, 1))
    assert state.apply(fact("e1"))
    assert state.apply(fact("e2", "u2"))
    assert not state.apply(fact("e1"))
    assert state.aggregate.users["u1"]["m"][0] == 1
    assert len(state.pending) == 2
    assert state.weight == 2


def test_fact_lines_concatenate() -> None:
    first, second = [fact("e1")], [fact("e2")]
    assert decode_facts(encode_facts(first) + encode_facts(second)) == first + second


def test_the_aggregate_is_the_durable_part_merged_with_what_was_applied_since() -> None:
    earlier = DayState(org_id="ws-1", day=date(2026, 1, 1))
    earlier.apply(fact("e1"))
    state = DayState(org_id="ws-1", day=date(2026, 1, 1))
    state.durable = codec.dumps(earlier.aggregate.to_json())
    state.apply(fact("e2"))
    state.apply(fact("e3", "u2"))
    assert state.aggregate.users["u1"]["m"][0] == 2
    assert state.aggregate.users["u2"]["m"][0] == 1
    assert state.pending_changes() == [fact("e2"), fact("e3", "u2")]


def test_head_bytes_round_trip_and_plain_json_heads_still_read() -> None:
    aggregate = codec.dumps({"users": {"u1": {}}, "models": []})
    inline = encode_facts([fact("e1"), fact("e2")])
    body = encode_head({"schema": 2, "segments": []}, aggregate, inline)
    document, carried = parse_head(body)
    assert document == {"schema": 2, "segments": [], "aggregate": codec.loads(aggregate)}
    assert decode_facts(carried) == [fact("e1"), fact("e2")]
    assert parse_head(encode_head({}, aggregate, b"")) == (
        {"aggregate": codec.loads(aggregate)},
        b"",
    )
    # A schema-1 head: one JSON document, no inline facts.
    old = codec.dumps({"schema": 1, "segments": [], "aggregate": {}})
    assert parse_head(old) == ({"schema": 1, "segments": [], "aggregate": {}}, b"")


def test_split_head_leaves_the_aggregate_encoded_whatever_it_holds() -> None:
    # Keys and strings inside the aggregate that look like the field do not fool it.
    tricky = {"models": {"aggregate": [1]}, "names": ['","aggregate":{}']}
    aggregate = codec.dumps(tricky)
    inline = encode_facts([fact("e1")])
    document = {"schema": 2, "org_id": "ws", "segments": [{"key": "k", "ids": "k.ids"}]}
    body = encode_head(document, aggregate, inline)
    assert split_head(body) == (document, aggregate, inline)
    assert parse_head(body)[0]["aggregate"] == tricky
    # Heads written another way are decoded whole and give the same answer.
    for other in (
        codec.dumps({"schema": 1, "aggregate": tricky, "segments": []}),
        codec.dumps({"aggregate": tricky}),
        encode_head({}, aggregate, inline),
    ):
        head, encoded, _ = split_head(other)
        assert "aggregate" not in head
        assert codec.loads(encoded) == tricky
