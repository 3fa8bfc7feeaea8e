"""Each export type reads only its own aggregate part: a table built from the part alone
equals the table built from the whole aggregate, for every type and subgroup."""

from __future__ import annotations

import pytest

from shared.contracts.requests import DataType
from shared.domain.aggregate import Aggregate
from shared.domain.aggregate_parts import AGGREGATE_PARTS, PART_OF, only_part, part_of
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


def whole() -> Aggregate:
    aggregate = Aggregate()
    for fact in FACTS:
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


def test_parts_cover_every_field_once() -> None:
    fields = [name for names in AGGREGATE_PARTS.values() for name in names]
    assert sorted(fields) == sorted(Aggregate.__slots__)
    assert set(PART_OF) == set(DataType)
    assert set(PART_OF.values()) == set(AGGREGATE_PARTS)


def test_a_part_leaves_the_other_fields_empty() -> None:
    aggregate = part_of(whole().to_json(), "projects")
    assert aggregate.projects
    emptied = ("users", "payg", "agents", "agent_conversations", "api_keys", "models")
    assert [name for name in emptied if getattr(aggregate, name)] == []
