"""A day state folds each event once, whatever is delivered again."""

from __future__ import annotations

from datetime import date

from shared.domain.facts import MESSAGE, decode_facts, encode_facts
from shared.storage.days import DayState


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
