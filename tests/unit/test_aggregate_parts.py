"""Each export type reads only its own aggregate part: a table built from the part alone
equals the table built from the whole aggregate, for every type and subgroup."""

from __future__ import annotations

import pytest

from shared import codec
from shared.contracts.requests import DataType
from shared.domain.aggregate import T_BY_MODEL, U_COST, U_TOTAL, Aggregate
from shared.domain.aggregate_absorb import absorb
from shared.domain.aggregate_parts import AGGREGATE_PARTS, PART_OF, only_part, part_for, part_of
from shared.domain.facts import Fact
from tests.unit.test_export_rows import (
    AGENTS,
    USER_FACTS,
    USERS,
    api_request,
    message,
    rows_of,
)

FACTS = [
    *USER_FACTS,
    message("u2", "o3", agent="a2", project="p2", conversation="c9", byok=True, source="API"),
    message("u4", "gpt-4.1", agent="a1", conversation="c2", deployment="eu"),
    api_request("k1", "o3", requests=3, cost=1.5),
    api_request("k2", "gpt-4.1", byok=True),
]
CASES = [
    (DataType.USERS, None),
    (DataType.USERS, "model"),
    (DataType.ASSISTANTS, None),
    (DataType.ASSISTANTS, "model"),
    (DataType.API_KEYS, None),
    (DataType.API_KEYS, "model"),
    (DataType.PROJECTS, None),
    (DataType.MODELS, None),
    (DataType.MODELS, "source"),
    (DataType.MODELS, "deployment"),
]


def rows(data_type: DataType, group_by: str | None, aggregate: Aggregate) -> list[dict[str, str]]:
    return rows_of(data_type, aggregate, group_by=group_by, users=USERS, agents=AGENTS)


def whole(facts: list[Fact] | None = None) -> Aggregate:
    aggregate = Aggregate()
    for fact in FACTS if facts is None else facts:
        aggregate.add(fact)
    return aggregate


@pytest.mark.parametrize(("data_type", "group_by"), CASES)
def test_a_part_holds_everything_its_export_reads(
    data_type: DataType, group_by: str | None
) -> None:
    part = PART_OF[data_type]
    expected = rows(data_type, group_by, whole())
    assert expected, "rows to compare"
    assert rows(data_type, group_by, only_part(whole(), part)) == expected
    assert rows(data_type, group_by, part_of(whole().to_json(), part)) == expected
    # The part the exporter reads (per-user totals for ungrouped users), also when
    # assembled from several documents the way a window is, by merge or by absorb.
    read = part_for(data_type, group_by)
    assert rows(data_type, group_by, only_part(whole(), read)) == expected
    halves = [FACTS[::2], FACTS[1::2]]
    merged, absorbed = Aggregate(), Aggregate()
    for half in halves:
        merged.merge(part_of(whole(half).to_json(), read))
        absorb(
            absorbed,
            Aggregate.from_json(codec.loads(codec.dumps(only_part(whole(half), read).to_json()))),
        )
    assert rows(data_type, group_by, merged) == expected
    assert rows(data_type, group_by, absorbed) == expected


def test_user_totals_are_the_users_summed_over_models() -> None:
    totals = part_of(whole().to_json(), "user_totals")
    assert totals.users == {}, "the per-model stats are not carried"
    assert set(totals.user_totals) == set(whole().users)
    for user, by_model in whole().users.items():
        record = totals.user_totals[user]
        assert record[T_BY_MODEL] == {model: stats[U_TOTAL] for model, stats in by_model.items()}
        assert record[U_TOTAL] == sum(stats[U_TOTAL] for stats in by_model.values())
        assert record[U_COST] == sum(stats[U_COST] for stats in by_model.values())
    assert "user_totals" not in whole().to_json(), "day heads never store them"


def test_parts_cover_every_field_once() -> None:
    fields = [name for names in AGGREGATE_PARTS.values() for name in names]
    assert sorted(set(fields)) == sorted(Aggregate.__slots__)
    assert sorted(fields) == sorted([*Aggregate.__slots__, "payg"]), "payg is in two parts"
    assert set(PART_OF) == set(DataType)
    assert set(PART_OF.values()) | {"user_totals"} == set(AGGREGATE_PARTS)


def test_a_part_leaves_the_other_fields_empty() -> None:
    aggregate = part_of(whole().to_json(), "projects")
    assert aggregate.projects
    emptied = ("users", "user_totals", "payg", "agents", "agent_conversations", "api_keys")
    assert [name for name in emptied if getattr(aggregate, name)] == []
