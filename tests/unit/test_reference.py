"""The reference exports against hand-computed expectations.

Every expected cell below was worked out by hand from the events next to it, so these
tests pin the oracle to the contract, not to itself.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared import codec
from shared.contracts.export_types import DataType, spec
from shared.domain.export import columns as production_columns
from tests.reference import (
    ReferenceResult,
    RequestRejected,
    build_log,
    parse_event,
    reference_csv_bytes,
    reference_export,
    reference_request,
    resolve_window,
)
from tests.reference.columns import BASE, BYOK, HEAD
from tests.reference.parsing import Invalid

NOW = datetime(2026, 11, 20, 12, 7, 31, tzinfo=UTC)
ORG = "ws-a"
_ids = itertools.count()

USERS_HEADER = [
    "period_start",
    "period_end",
    "org_id",
    "user_id",
    "name",
    "email",
    "role",
    "joined_at",
    "department",
    "company_name",
    "license_type",
    "payg_limit_current",
    "payg_consumption_in_period",
    "payg_utilization_pct_current",
    "messages_total",
    "messages_total_rank",
    "messages_chat",
    "messages_chat_rank",
    "messages_assistants",
    "messages_assistants_rank",
    "assistants_messaged",
    "assistants_to_messages",
    "messages_projects",
    "messages_projects_rank",
    "projects_messaged",
    "projects_to_messages",
    "model_to_messages_total",
    "action_messages",
    "action_messaged",
    "action_to_messages",
]


def event(kind: str, at: str, org: str = ORG, **fields: Any) -> dict[str, Any]:
    return {"event_id": f"e{next(_ids)}", "type": kind, "org_id": org, "occurred_at": at, **fields}


def msg(at: str, user: str, **fields: Any) -> dict[str, Any]:
    return event(
        "message", at, user_id=user, **{"model": "gpt-4.1", "provider": "openai", **fields}
    )


def user(at: str, user_id: str, **fields: Any) -> dict[str, Any]:
    return event("user_upserted", at, user_id=user_id, **fields)


def export(
    events: list[Any],
    data_type: str,
    start: str = "2026-04-01",
    end: str = "2026-04-30",
    zone: str = "UTC",
    group_by: str | None = None,
    org: str = ORG,
) -> ReferenceResult:
    return reference_export(
        events,
        org_id=org,
        data_type=data_type,
        from_date=start,
        from_tz=zone,
        to_date=end,
        to_tz=zone,
        group_by=group_by,
        now=NOW,
    )


def rows(result: ReferenceResult) -> list[dict[str, str]]:
    return [dict(zip(result.header, row, strict=True)) for row in result.rows]


def column(result: ReferenceResult, name: str) -> list[str]:
    return [row[name] for row in rows(result)]


def count_messages(events: list[Any], start: str, end: str, zone: str) -> str:
    result = export(events, "users", start, end, zone)
    return rows(result)[0]["messages_total"] if result.rows else "none"


# ---- columns ------------------------------------------------------------------------
SEED_COLUMNS = Path(__file__).resolve().parents[1] / "reference" / "seed_columns.md"
# The reference's tables, by our heading, and the (type, BYOK?) column list each is.
SEED_TABLES = {
    "Users: column definitions": ("users", False),
    "Users: additional columns for BYOK workspaces": ("users", True),
    "Agents: column definitions": ("assistants", False),
    "Agents: additional columns for BYOK workspaces": ("assistants", True),
    "API keys: column definitions": ("api_keys", False),
    "API keys: additional columns for BYOK workspaces": ("api_keys", True),
    "Projects: column definitions": ("projects", False),
    "Models: column definitions": ("models", False),
    "Models: additional columns for BYOK workspaces": ("models", True),
}


def _seed_tables() -> dict[str, list[str]]:
    """Heading -> the backquoted first cells of its table's rows, in order."""
    tables: dict[str, list[str]] = {}
    heading = None
    for line in SEED_COLUMNS.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            heading = line[3:].strip()
            tables[heading] = []
        elif (match := re.match(r"\| `([a-z_]+)` \|", line)) and heading is not None:
            tables[heading].append(match.group(1))
    return tables


def _expected_from_seed() -> dict[tuple[str, bool], list[str]]:
    tables = _seed_tables()
    assert list(tables) == list(SEED_TABLES)
    expected = {}
    for heading, key in SEED_TABLES.items():
        columns = tables[heading]
        _, byok = key
        # Each type's own table starts with the common head; the BYOK extras have none.
        if byok:
            assert not set(HEAD) & set(columns), heading
            expected[key] = columns
        else:
            assert columns[: len(HEAD)] == HEAD, heading
            expected[key] = columns[len(HEAD) :]
    return expected


def test_the_oracles_columns_are_those_of_the_reference_tables() -> None:
    ours = {(kind, byok): (BYOK if byok else BASE)[kind] for kind, byok in SEED_TABLES.values()}
    assert ours == _expected_from_seed()


def test_productions_columns_are_those_of_the_reference_tables() -> None:
    ours = {
        (kind, byok): list(
            spec(DataType(kind)).byok_columns if byok else spec(DataType(kind)).columns
        )
        for kind, byok in SEED_TABLES.values()
    }
    assert list(production_columns.HEAD) == HEAD
    assert ours == _expected_from_seed()


def test_users_header_without_byok_and_privacy() -> None:
    result = export([msg("2026-04-02T10:00:00Z", "u1")], "users")
    assert result.header == USERS_HEADER


# ---- windows (§3) -------------------------------------------------------------------
def test_berlin_spring_dst_day_has_23_hours() -> None:
    window = resolve_window(
        from_date="2026-03-29",
        from_tz="Europe/Berlin",
        to_date="2026-03-29",
        to_tz="Europe/Berlin",
        now=NOW,
    )
    assert window.start == datetime(2026, 3, 28, 23, tzinfo=UTC)
    assert window.end == datetime(2026, 3, 29, 22, tzinfo=UTC)
    assert window.date_range == {
        "from": "2026-03-29T00:00:00.000+01:00",
        "to": "2026-03-29T23:59:59.999+02:00",
    }
    assert (window.period_start, window.period_end) == ("2026-03-29", "2026-03-29")
    events = [
        msg(at, "u1")
        for at in (
            "2026-03-28T22:59:59.999Z",
            "2026-03-28T23:00:00Z",
            "2026-03-29T23:59:59.999+02:00",
            "2026-03-29T22:00:00Z",
        )
    ]
    assert count_messages(events, "2026-03-29", "2026-03-29", "Europe/Berlin") == "2"


def test_berlin_window_across_the_autumn_change() -> None:
    window = resolve_window(
        from_date="2026-10-24",
        from_tz="Europe/Berlin",
        to_date="2026-10-25",
        to_tz="Europe/Berlin",
        now=NOW,
    )
    assert window.start == datetime(2026, 10, 23, 22, tzinfo=UTC)
    assert window.end == datetime(2026, 10, 25, 23, tzinfo=UTC)  # 25 October has 25 hours
    assert window.date_range["to"] == "2026-10-25T23:59:59.999+01:00"


def test_skipped_and_repeated_wall_times_resolve_with_fold_0() -> None:
    gap = resolve_window(
        from_date="2026-03-29T02:30:00",
        from_tz="Europe/Berlin",
        to_date="2026-10-25T02:30:00",
        to_tz="Europe/Berlin",
        now=NOW,
    )
    assert gap.start == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert gap.date_range["from"] == "2026-03-29T03:30:00.000+02:00"
    # 02:30 on 25 October happens twice; fold=0 is the first (+02:00), i.e. 00:30Z.
    assert gap.end == datetime(2026, 10, 25, 0, 45, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "start", "end", "date_range"),
    [
        (
            "Asia/Kolkata",
            datetime(2026, 3, 31, 18, 30, tzinfo=UTC),
            datetime(2026, 4, 1, 18, 30, tzinfo=UTC),
            {"from": "2026-04-01T00:00:00.000+05:30", "to": "2026-04-01T23:59:59.999+05:30"},
        ),
        (
            "Asia/Kathmandu",
            datetime(2026, 3, 31, 18, 15, tzinfo=UTC),
            datetime(2026, 4, 1, 18, 15, tzinfo=UTC),
            {"from": "2026-04-01T00:00:00.000+05:45", "to": "2026-04-01T23:59:59.999+05:45"},
        ),
        (
            "UTC",
            datetime(2026, 4, 1, tzinfo=UTC),
            datetime(2026, 4, 2, tzinfo=UTC),
            {"from": "2026-04-01T00:00:00.000Z", "to": "2026-04-01T23:59:59.999Z"},
        ),
    ],
)
def test_local_midnights_are_exact_quarter_hours(
    zone: str, start: datetime, end: datetime, date_range: dict[str, str]
) -> None:
    window = resolve_window(
        from_date="2026-04-01", from_tz=zone, to_date="2026-04-01", to_tz=zone, now=NOW
    )
    assert (window.start, window.end, window.date_range) == (start, end, date_range)
    inside = (start + timedelta(minutes=1)).isoformat()
    before = (start - timedelta(milliseconds=1)).isoformat()
    assert (
        count_messages([msg(inside, "u1"), msg(before, "u1")], "2026-04-01", "2026-04-01", zone)
        == "1"
    )


def test_st_johns_spring_forward_day() -> None:
    window = resolve_window(
        from_date="2026-03-08",
        from_tz="America/St_Johns",
        to_date="2026-03-08",
        to_tz="America/St_Johns",
        now=NOW,
    )
    assert window.start == datetime(2026, 3, 8, 3, 30, tzinfo=UTC)
    assert window.end == datetime(2026, 3, 9, 2, 30, tzinfo=UTC)
    assert window.date_range == {
        "from": "2026-03-08T00:00:00.000-03:30",
        "to": "2026-03-08T23:59:59.999-02:30",
    }


def test_date_times_ignore_their_offset_and_round_to_quarter_hours() -> None:
    window = resolve_window(
        from_date="2026-04-01T06:37:00",
        from_tz="Asia/Kathmandu",
        to_date="2026-04-01T13:10:00.000Z",
        to_tz="Asia/Kathmandu",
        now=NOW,
    )
    # 06:37 +05:45 = 00:52Z -> floor 00:45Z; 13:10 +05:45 = 07:25Z, +1 ms -> ceil 07:30Z.
    assert window.start == datetime(2026, 4, 1, 0, 45, tzinfo=UTC)
    assert window.end == datetime(2026, 4, 1, 7, 30, tzinfo=UTC)
    assert window.date_range == {
        "from": "2026-04-01T06:30:00.000+05:45",
        "to": "2026-04-01T13:14:59.999+05:45",
    }


def test_each_bound_has_its_own_zone() -> None:
    window = resolve_window(
        from_date="2026-04-01",
        from_tz="Asia/Kolkata",
        to_date="2026-04-01",
        to_tz="America/St_Johns",
        now=NOW,
    )
    assert window.start == datetime(2026, 3, 31, 18, 30, tzinfo=UTC)
    assert window.end == datetime(2026, 4, 2, 2, 30, tzinfo=UTC)
    assert (window.period_start, window.period_end) == ("2026-04-01", "2026-04-01")


def test_a_future_to_is_clamped_to_now() -> None:
    window = resolve_window(
        from_date="2026-11-01", from_tz="UTC", to_date="2026-12-31", to_tz="UTC", now=NOW
    )
    assert window.end == datetime(2026, 11, 20, 12, 15, tzinfo=UTC)
    assert window.date_range["to"] == "2026-11-20T12:14:59.999Z"
    assert window.period_end == "2026-11-20"


@pytest.mark.parametrize(
    ("start", "end", "zone"),
    [
        ("2026-04-02", "2026-04-01", "UTC"),  # to before from
        ("2025-11-19", "2026-01-01", "UTC"),  # more than 12 months back
        ("2025-11-20", "2026-01-01", "Pacific/Kiritimati"),  # today there is 21 November
        ("2026-12-01", "2026-12-31", "UTC"),  # from after now
        ("2026-04-01", "2026-04-30", "Mars/Olympus"),
        ("2026-04-31", "2026-05-01", "UTC"),
    ],
)
def test_invalid_windows_are_rejected_with_400(start: str, end: str, zone: str) -> None:
    with pytest.raises(RequestRejected) as caught:
        export([], "users", start, end, zone)
    assert caught.value.status == 400


def test_exactly_twelve_months_back_is_accepted_all_day() -> None:
    assert export([], "users", "2025-11-20", "2025-11-30").period_start == "2025-11-20"


@pytest.mark.parametrize(
    ("data_type", "group_by"),
    [
        ("files", None),
        ("projects", "model"),
        ("users", "source"),
        ("models", "model"),
        ("models", "deployment"),
    ],  # deployment: this workspace is not BYOK
)
def test_unknown_types_and_groupings_are_rejected(data_type: str, group_by: str) -> None:
    with pytest.raises(RequestRejected) as caught:
        export([msg("2026-04-02T10:00:00Z", "u1")], data_type, group_by=group_by)
    assert caught.value.status == 400


# ---- validity and dedup (§2) ---------------------------------------------------------
def _good() -> dict[str, Any]:
    return msg("2026-04-02T10:00:00Z", "u1", usage={"prompt_tokens": 10, "cost_usd": 0.5})


INVALID_CHANGES: list[dict[str, Any]] = [
    {"event_id": "a/b"},
    {"event_id": ""},
    {"event_id": "x" * 129},
    {"org_id": "ws/a"},
    {"org_id": "-ws"},
    {"user_id": "u..1"},
    {"user_id": None},
    {"type": "click"},
    {"type": ["message"]},  # unhashable: found by the fault suite's fuzzing
    {"occurred_at": "2026-04-02T10:00:00"},
    {"occurred_at": "2026-02-30T10:00:00Z"},
    {"occurred_at": "2025-11-18T23:59:59.999Z"},  # before the oldest accepted UTC day
    {"occurred_at": "2026-11-21T12:07:31.001Z"},  # more than 24 h ahead
    {"requests": 0},
    {"requests": "1"},
    {"requests": 1.0},
    {"byok": "true"},
    {"usage": {"prompt_tokens": 10, "cached_prompt_tokens": 8, "cache_creation_tokens": 3}},
    {"usage": {"prompt_tokens": -1}},
    {"usage": {"cost_usd": -0.01}},
    {"usage": {"completion_tokens": True}},
    {"actions": "canvas"},
    {"model": 4},
    {"assistant_id": "a/1"},
]


@pytest.mark.parametrize("change", INVALID_CHANGES, ids=lambda c: str(c)[:40])
def test_events_breaking_a_rule_are_ignored(change: dict[str, Any]) -> None:
    assert parse_event(_good(), valid_at=NOW)
    with pytest.raises(Invalid):
        parse_event({**_good(), **change}, valid_at=NOW)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"event_id": "e1", "type": "message"',
        b"[1, 2]",
        b'"message"',
        b"\xff\xfe{}",
        b'{"n": NaN}',
        codec.dumps({**_good(), "pad": "x" * (1024 * 1024)}),
    ],
)
def test_malformed_values_are_invalid(raw: bytes) -> None:
    assert build_log([raw], valid_at=NOW).invalid == 1


def test_range_boundaries_are_valid() -> None:
    oldest = {**_good(), "occurred_at": "2025-11-19T00:00:00Z"}  # 12 months + 1 day back
    newest = {**_good(), "occurred_at": "2026-11-21T17:37:31+05:30"}
    no_model = {k: v for k, v in _good().items() if k not in ("model", "provider")}
    assert build_log([oldest, newest], valid_at=NOW).invalid == 0
    assert build_log([no_model], valid_at=NOW).invalid == 1, "model/provider are required"


def test_duplicates_count_once_and_ids_are_per_workspace() -> None:
    first = msg("2026-04-02T10:00:00Z", "u1", event_id="same")
    changed = msg("2026-04-03T10:00:00Z", "u2", event_id="same")
    other_org = msg("2026-04-02T10:00:00Z", "u1", event_id="same", org_id="ws-b")
    invalid_twin = {**msg("2026-04-02T10:00:00Z", "u3", event_id="dup-2"), "requests": 0}
    valid_twin = msg("2026-04-02T10:00:00Z", "u3", event_id="dup-2")
    values: list[bytes | dict[str, Any]] = [
        codec.dumps(first),
        codec.dumps(first),
        changed,
        other_org,
        invalid_twin,
        valid_twin,
    ]
    log = build_log(values, valid_at=NOW)
    assert (log.duplicates, log.invalid) == (2, 1)
    result = export(values, "users")
    assert [(r["user_id"], r["messages_total"]) for r in rows(result)] == [("u1", "1"), ("u3", "1")]
    assert column(export(values, "users", org="ws-b"), "messages_total") == ["1"]


def test_late_events_count_in_their_period_and_latest_upsert_wins_by_time() -> None:
    events = [
        user("2026-04-10T00:00:00Z", "u1", name="Newer"),
        msg("2026-04-20T00:00:00Z", "u1"),
        msg("2026-04-05T00:00:00Z", "u1"),  # arrives after a later event
        user("2026-04-01T00:00:00Z", "u1", name="Older"),  # late and older: loses
    ]
    result = export(events, "users")
    assert (rows(result)[0]["name"], rows(result)[0]["messages_total"]) == ("Newer", "2")
    assert column(export(events, "users", "2026-04-01", "2026-04-05"), "name") == ["Older"]


# ---- users ------------------------------------------------------------------------------
def _users_events() -> list[dict[str, Any]]:
    common = {"department": "Sales, EMEA", "company_name": 'Acme "Q"', "license_type": "payg"}
    return [
        user(
            "2026-03-01T00:00:00Z",
            "u1",
            name="=SUM(A1)",
            email="u1@x.test",
            role="member",
            joined_at="2025-12-31T23:30:00-05:00",
            payg_limit=50,
            **common,
        ),
        user(
            "2026-04-20T00:00:00Z",
            "u1",
            name="=SUM(A1)",
            email="u1@x.test",
            role="admin",
            joined_at="2025-12-31T23:30:00-05:00",
            payg_limit=40,
            **common,
        ),
        user("2026-05-02T00:00:00Z", "u1", name="Later", role="owner"),  # after the window
        user(
            "2026-03-01T00:00:00Z",
            "u2",
            name="Zoë Ñúñez",
            email="z@x.test",
            payg_limit=None,
            joined_at="2026-01-15",
        ),
        user("2026-03-01T00:00:00Z", "u3", name='Idle, "quiet"\nuser'),
        msg("2026-04-02T10:00:00Z", "u1", actions=["canvas", "canvas"]),
        msg("2026-04-03T10:00:00+05:30", "u1", assistant_id="a1", actions=["web_search"]),
        msg(
            "2026-04-04T10:00:00Z",
            "u1",
            assistant_id="a1",
            project_id="p1",
            model="claude-sonnet-4",
            provider="anthropic",
            actions=[],
        ),
        msg("2026-04-05T10:00:00Z", "u1", project_id="p2", model="claude-sonnet-4"),
        msg("2026-04-06T10:00:00Z", "u2", assistant_id="a2", actions=["web_search", "canvas"]),
        msg("2026-04-07T10:00:00Z", "u2"),
        msg("2026-03-31T23:59:59.999Z", "u1"),  # before the window
        msg("2026-04-08T10:00:00Z", "u4"),  # never upserted
        event("payg_consumption", "2026-04-09T00:00:00Z", user_id="u1", amount=10.5),
        event("payg_consumption", "2026-04-10T00:00:00Z", user_id="u1", amount=0.0000125),
        event("payg_consumption", "2026-05-01T00:00:00Z", user_id="u1", amount=99),  # after
        event("payg_consumption", "2026-04-10T00:00:00Z", user_id="u2", amount=3.25),
    ]


def test_users_rows_by_hand() -> None:
    result = export(_users_events(), "users")
    assert result.header == USERS_HEADER
    head = {"period_start": "2026-04-01", "period_end": "2026-04-30", "org_id": ORG}
    u1 = head | {
        "user_id": "u1",
        "name": "'=SUM(A1)",
        "email": "u1@x.test",
        "role": "admin",
        "joined_at": "2025-12-31",
        "department": "Sales, EMEA",
        "company_name": 'Acme "Q"',
        "license_type": "payg",
        "payg_limit_current": "40.000000",
        # 10.5000125 rounds half-even to ...012; 10.5000125 / 40 * 100 = 26.25000312...
        "payg_consumption_in_period": "10.500012",
        "payg_utilization_pct_current": "26.25",
        "messages_total": "4",
        "messages_total_rank": "1",
        "messages_chat": "1",
        "messages_chat_rank": "1",
        "messages_assistants": "2",
        "messages_assistants_rank": "1",
        "assistants_messaged": "1",
        "assistants_to_messages": '{"a1":2}',
        "messages_projects": "2",
        "messages_projects_rank": "1",
        "projects_messaged": "2",
        "projects_to_messages": '{"p1":1,"p2":1}',
        "model_to_messages_total": '{"claude-sonnet-4":2,"gpt-4.1":2}',
        "action_messages": "2",
        "action_messaged": "2",
        "action_to_messages": '{"canvas":1,"web_search":1}',
    }
    u2 = head | {
        "user_id": "u2",
        "name": "Zoë Ñúñez",
        "email": "z@x.test",
        "role": "",
        "joined_at": "2026-01-15",
        "department": "",
        "company_name": "",
        "license_type": "",
        "payg_limit_current": "",
        "payg_consumption_in_period": "3.250000",
        "payg_utilization_pct_current": "",
        "messages_total": "2",
        "messages_total_rank": "2",
        "messages_chat": "1",
        "messages_chat_rank": "1",
        "messages_assistants": "1",
        "messages_assistants_rank": "2",
        "assistants_messaged": "1",
        "assistants_to_messages": '{"a2":1}',
        "messages_projects": "0",
        "messages_projects_rank": "2",
        "projects_messaged": "0",
        "projects_to_messages": "{}",
        "model_to_messages_total": '{"gpt-4.1":2}',
        "action_messages": "1",
        "action_messaged": "2",
        "action_to_messages": '{"canvas":1,"web_search":1}',
    }
    empty = {
        "name": "",
        "email": "",
        "role": "",
        "joined_at": "",
        "department": "",
        "company_name": "",
        "license_type": "",
        "payg_limit_current": "",
        "payg_consumption_in_period": "0.000000",
        "payg_utilization_pct_current": "",
        "assistants_messaged": "0",
        "assistants_to_messages": "{}",
        "messages_projects": "0",
        "messages_projects_rank": "2",
        "projects_messaged": "0",
        "projects_to_messages": "{}",
        "action_messages": "0",
        "action_messaged": "0",
        "action_to_messages": "{}",
    }
    u4 = (
        head
        | empty
        | {
            "user_id": "u4",
            "messages_total": "1",
            "messages_total_rank": "3",
            "messages_chat": "1",
            "messages_chat_rank": "1",
            "messages_assistants": "0",
            "messages_assistants_rank": "3",
            "model_to_messages_total": '{"gpt-4.1":1}',
        }
    )
    u3 = (
        head
        | empty
        | {
            "user_id": "u3",
            "name": 'Idle, "quiet"\nuser',
            "messages_total": "0",
            "messages_total_rank": "4",
            "messages_chat": "0",
            "messages_chat_rank": "4",
            "messages_assistants": "0",
            "messages_assistants_rank": "3",
            "model_to_messages_total": "{}",
        }
    )
    assert rows(result) == [u1, u2, u4, u3]


def test_utilisation_rounds_half_even_and_needs_a_positive_limit() -> None:
    events = [
        user("2026-03-01T00:00:00Z", "u1", payg_limit=800),
        user("2026-03-01T00:00:00Z", "u2", payg_limit=0),
        event("payg_consumption", "2026-04-02T00:00:00Z", user_id="u1", amount=1),
        event("payg_consumption", "2026-04-02T00:00:00Z", user_id="u2", amount=1),
    ]
    result = {r["user_id"]: r for r in rows(export(events, "users"))}
    assert result["u1"]["payg_utilization_pct_current"] == "0.12"  # 0.125: half-even
    assert result["u2"]["payg_utilization_pct_current"] == ""
    assert result["u2"]["payg_limit_current"] == "0.000000"


def test_money_is_each_amount_as_read_rounded_to_nano_dollars_then_summed() -> None:
    raw = [
        codec.dumps(event("payg_consumption", "2026-04-02T00:00:00Z", user_id="u1", amount=amount))
        for amount in (0.1, 0.2)
    ]
    raw.append(
        b'{"event_id":"x1","type":"payg_consumption","org_id":"ws-a","occurred_at":'
        b'"2026-04-03T00:00:00Z","user_id":"u2","amount":0.0000005000000000000001}'
    )
    result = {r["user_id"]: r for r in rows(export(raw, "users"))}
    # 100,000,000 + 200,000,000 nano: no binary-float error reaches the sum
    assert result["u1"]["payg_consumption_in_period"] == "0.300000"
    # read as the nearest double, 5e-07: 500 nano, a tie at the 6th decimal, to even
    assert result["u2"]["payg_consumption_in_period"] == "0.000000"


def test_users_byok_columns_and_privacy() -> None:
    events = [
        event("workspace_settings", "2026-01-01T00:00:00Z", byok=True, user_level_data=False),
        # arrives later but is older: the latest by occurred_at still wins
        event("workspace_settings", "2025-12-01T00:00:00Z", byok=False, user_level_data=True),
        user("2026-03-01T00:00:00Z", "u1", name="Secret", email="s@x.test"),
        msg(
            "2026-04-02T10:00:00Z",
            "u1",
            usage={
                "prompt_tokens": 100,
                "completion_tokens": 7,
                "cached_prompt_tokens": 30,
                "cache_creation_tokens": 20,
                "cost_usd": 0.1,
            },
        ),
        msg("2026-04-03T10:00:00Z", "u1", usage={"prompt_tokens": 50, "cost_usd": 0.2}),
        msg("2026-04-04T10:00:00Z", "u1"),
    ]
    result = export(events, "users")
    assert "name" not in result.header
    assert "email" not in result.header
    assert result.header[-6:] == BYOK["users"]
    assert [rows(result)[0][c] for c in BYOK["users"]] == [
        "150",
        "7",
        "30",
        "20",
        "100",
        "0.300000",
    ]


def test_users_grouped_by_model() -> None:
    events = [
        *_users_events(),
        user("2026-03-01T00:00:00Z", "u5", name="Only extra usage"),
        event("payg_consumption", "2026-04-11T00:00:00Z", user_id="u5", amount=2),
        msg("2026-04-12T10:00:00Z", "u1"),
    ]
    result = export(events, "users", group_by="model")
    assert result.header[:5] == ["period_start", "period_end", "org_id", "user_id", "model"]
    assert result.header[5:] == [
        "name",
        "email",
        "role",
        "joined_at",
        "department",
        "company_name",
        "license_type",
        "payg_limit_current",
        "payg_consumption_in_period",
        "payg_utilization_pct_current",
        "messages_total",
        "messages_chat",
        "messages_assistants",
        "assistants_messaged",
        "messages_projects",
    ]
    keyed = [
        (
            r["user_id"],
            r["model"],
            r["messages_total"],
            r["messages_chat"],
            r["messages_assistants"],
            r["assistants_messaged"],
            r["messages_projects"],
            r["payg_consumption_in_period"],
        )
        for r in rows(result)
    ]
    assert keyed == [
        ("u1", "gpt-4.1", "3", "2", "1", "1", "0", "10.500012"),
        ("u1", "claude-sonnet-4", "2", "0", "1", "1", "2", "10.500012"),
        ("u2", "gpt-4.1", "2", "1", "1", "1", "0", "3.250000"),
        ("u4", "gpt-4.1", "1", "1", "0", "0", "0", "0.000000"),
        ("u3", "", "0", "0", "0", "0", "0", "0.000000"),
        ("u5", "", "0", "0", "0", "0", "0", "2.000000"),
    ]


def test_rows_sort_by_their_own_subgroup_count() -> None:
    events = [msg("2026-04-02T10:00:00Z", "u1") for _ in range(3)]
    events += [msg("2026-04-02T10:00:00Z", "u1", model="m-small") for _ in range(1)]
    events += [msg("2026-04-02T10:00:00Z", "u2") for _ in range(2)]
    result = export(events, "users", group_by="model")
    assert [(r["user_id"], r["model"]) for r in rows(result)] == [
        ("u1", "gpt-4.1"),
        ("u2", "gpt-4.1"),
        ("u1", "m-small"),
    ]


# ---- agents -------------------------------------------------------------------------
def _agent_events() -> list[dict[str, Any]]:
    def usage(prompt: int, completion: int, cached: int = 0, creation: int = 0) -> Any:
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "cached_prompt_tokens": cached,
            "cache_creation_tokens": creation,
        }

    agent = {
        "description": 'Line1\nLine2, "q"',
        "url": "https://x.test/a1",
        "owner_id": "u1",
        "owner_email": "-owner@x.test",
    }
    return [
        event("workspace_settings", "2026-01-01T00:00:00Z", byok=True),
        user("2026-03-01T00:00:00Z", "u1"),
        user("2026-03-01T00:00:00Z", "u2"),
        user("2026-04-15T00:00:00Z", "u2", deleted=True),
        user("2026-03-01T00:00:00Z", "u3"),
        user("2026-05-10T00:00:00Z", "u3", deleted=True),  # after the window
        event("agent_upserted", "2026-03-01T00:00:00Z", assistant_id="a1", name="Helper", **agent),
        event("agent_upserted", "2026-03-01T00:00:00Z", assistant_id="a2", name="Gone"),
        event("agent_upserted", "2026-04-10T00:00:00Z", assistant_id="a2", deleted=True),
        event("agent_upserted", "2026-03-01T00:00:00Z", assistant_id="a3", name="Unused"),
        event("agent_upserted", "2026-05-05T00:00:00Z", assistant_id="a4", name="Late"),
        msg(
            "2026-04-02T10:00:00Z",
            "u1",
            assistant_id="a1",
            conversation_id="c1",
            usage=usage(100, 10, 20, 5),
        ),
        msg(
            "2026-04-03T10:00:00Z",
            "u1",
            assistant_id="a1",
            conversation_id="c1",
            usage=usage(300, 30),
        ),
        msg(
            "2026-04-04T10:00:00Z",
            "u2",
            assistant_id="a1",
            conversation_id="c2",
            model="claude-sonnet-4",
            usage=usage(50, 5, 50),
        ),
        msg(
            "2026-04-05T10:00:00Z",
            "u3",
            assistant_id="a1",
            conversation_id=None,
            usage=usage(51, 7),
        ),
        msg("2026-04-06T10:00:00Z", "u1", assistant_id="a4", usage=usage(7, 3)),
    ]


def test_agents_rows_by_hand() -> None:
    result = export(_agent_events(), "agents")
    assert result.data_type == "assistants"
    assert result.header == HEAD + BASE["assistants"] + BYOK["assistants"]
    a1, a4, a3 = rows(result)
    assert a1 == {
        "period_start": "2026-04-01",
        "period_end": "2026-04-30",
        "org_id": ORG,
        "assistant_id": "a1",
        "assistant_name": "Helper",
        "assistant_description": 'Line1\nLine2, "q"',
        "assistant_url": "https://x.test/a1",
        "assistant_owner_id": "u1",
        "assistant_owner_email": "'-owner@x.test",
        "messages": "4",
        "unique_users": "3",
        "active_users": "2",
        "conversations": "2",
        "messages_per_user": "2.00",
        "sum_prompt_tokens": "501",
        "avg_prompt_tokens": "125.25",
        "min_prompt_tokens": "50",
        "max_prompt_tokens": "300",
        "sum_completion_tokens": "52",
        "avg_completion_tokens": "13.00",
        "min_completion_tokens": "5",
        "max_completion_tokens": "30",
        "sum_cached_prompt_tokens": "70",
        "sum_cache_creation_tokens": "5",
        "sum_no_cache_tokens": "426",
    }
    assert (a4["assistant_name"], a4["messages"], a4["avg_prompt_tokens"]) == ("Late", "1", "7.00")
    assert [
        a3[c]
        for c in (
            "messages",
            "active_users",
            "messages_per_user",
            "avg_prompt_tokens",
            "min_prompt_tokens",
            "max_completion_tokens",
            "sum_prompt_tokens",
        )
    ] == ["0", "0", "", "", "", "", "0"]


def test_agents_grouped_by_model_and_privacy() -> None:
    events = [
        *_agent_events(),
        event("workspace_settings", "2026-02-01T00:00:00Z", byok=False, user_level_data=False),
    ]
    result = export(events, "agents", group_by="model")
    assert result.header == [
        "period_start",
        "period_end",
        "org_id",
        "assistant_id",
        "model",
        "assistant_name",
        "assistant_description",
        "assistant_url",
        "assistant_owner_id",
        "messages",
        "unique_users",
    ]
    assert [
        (r["assistant_id"], r["model"], r["messages"], r["unique_users"]) for r in rows(result)
    ] == [
        ("a1", "gpt-4.1", "3", "2"),
        ("a1", "claude-sonnet-4", "1", "1"),
        ("a4", "gpt-4.1", "1", "1"),
        ("a3", "", "0", "0"),
    ]


# ---- API keys, projects, models ------------------------------------------------------
GPT = {"model": "gpt-4.1", "provider": "openai"}


def test_api_keys_rows_and_money_ties() -> None:
    events = [
        event("api_key_upserted", "2026-03-01T00:00:00Z", api_key_id="k1", name="+staging"),
        event("api_key_upserted", "2026-03-01T00:00:00Z", api_key_id="k3", name="Revoked"),
        event("api_key_upserted", "2026-03-20T00:00:00Z", api_key_id="k3", deleted=True),
        event("api_key_upserted", "2026-03-01T00:00:00Z", api_key_id="k4", name="Idle"),
        event(
            "api_request",
            "2026-04-02T00:00:00Z",
            api_key_id="k1",
            requests=3,
            usage={"cost_usd": 0.0000125},
            **GPT,
        ),
        event(
            "api_request",
            "2026-04-02T00:00:00Z",
            api_key_id="k1",
            model="o3",
            provider="openai",
            usage={"cost_usd": 0.000001},
        ),
        event(
            "api_request",
            "2026-04-03T00:00:00Z",
            api_key_id="k2",
            usage={"cost_usd": 0.0000125},
            **GPT,
        ),
    ]
    result = export(events, "api_keys")
    assert result.header == [*HEAD, "api_key_id", "api_key_name", "requests", "total_cost_usd"]
    assert [r[3:] for r in result.rows] == [
        ["k1", "'+staging", "4", "0.000014"],  # 0.0000135: tie, rounds to even 4
        ["k2", "", "1", "0.000012"],  # 0.0000125: tie, rounds to even 2
        ["k4", "Idle", "0", "0.000000"],
    ]
    grouped = export(events, "api_keys", group_by="model")
    assert grouped.header[3:5] == ["api_key_id", "model"]
    assert [r[3:7] for r in grouped.rows] == [
        ["k1", "gpt-4.1", "'+staging", "3"],
        ["k1", "o3", "'+staging", "1"],
        ["k2", "gpt-4.1", "", "1"],
        ["k4", "", "Idle", "0"],
    ]


def test_projects_rows() -> None:
    events = [
        event(
            "project_upserted",
            "2026-03-01T00:00:00Z",
            project_id="p1",
            name='Q3, "Big"',
            owner_id="u1",
            owner_email="@boss",
        ),
        event("project_upserted", "2026-03-01T00:00:00Z", project_id="p2", name="Quiet"),
        msg("2026-04-02T00:00:00Z", "u1", project_id="p1"),
        msg("2026-04-02T00:00:00Z", "u2", project_id="p1", assistant_id="a1"),
        msg("2026-04-02T00:00:00Z", "u2", project_id="p3"),
    ]
    result = export(events, "projects")
    assert [r[3:] for r in result.rows] == [
        ["p1", 'Q3, "Big"', "u1", "'@boss", "2"],
        ["p3", "", "", "", "1"],
        ["p2", "Quiet", "", "", "0"],
    ]
    private = [event("workspace_settings", "2026-01-01T00:00:00Z", user_level_data=False)]
    assert "project_owner_email" not in export(events + private, "projects").header


def test_models_rows_groupings_and_404() -> None:
    byok = {"byok": True, "deployment": "eu-gpt"}
    events = [
        event("workspace_settings", "2026-01-01T00:00:00Z", byok=True),
        msg("2026-04-02T00:00:00Z", "u1", requests=2, source="web"),
        event(
            "api_request",
            "2026-04-02T00:00:00Z",
            api_key_id="k1",
            model="gpt-4.1",
            provider="openai",
        ),
        msg(
            "2026-04-02T00:00:00Z",
            "u1",
            requests=3,
            source="Slack",
            **byok,
            usage={"prompt_tokens": 10, "cached_prompt_tokens": 4, "cost_usd": 1.5},
        ),
        # no model: invalid (model and provider are required), so it counts nowhere
        event("api_request", "2026-04-03T00:00:00Z", api_key_id="k1", byok=True),
    ]
    result = export(events, "models")
    assert result.header == HEAD + BASE["models"] + BYOK["models"]
    assert [r[3:] for r in result.rows] == [
        ["gpt-4.1", "openai", "false", "3", "0", "0", "0", "0", "0", "0.000000"],
        ["gpt-4.1", "openai", "true", "3", "10", "0", "4", "0", "6", "1.500000"],
    ]
    by_source = export(events, "models", group_by="source")
    assert [r[3:8] for r in by_source.rows] == [
        ["gpt-4.1", "openai", "true", "SLACK", "3"],
        ["gpt-4.1", "openai", "false", "WEB", "2"],
        ["gpt-4.1", "openai", "false", "API", "1"],
    ]
    by_deployment = export(events, "models", group_by="deployment")
    assert [r[6] for r in by_deployment.rows] == ["", "eu-gpt"]
    empty = export(events, "models", "2026-06-01", "2026-06-30")
    assert (empty.rows, empty.status) == ([], 404)


def test_entities_exist_only_between_upsert_and_deletion() -> None:
    events = [
        user("2026-05-05T00:00:00Z", "later", name="Joined after"),
        user("2026-03-01T00:00:00Z", "gone", name="Gone"),
        user("2026-04-15T00:00:00Z", "gone", name="Gone", deleted=True),
        user("2026-03-01T00:00:00Z", "leaves", name="Leaves later"),
        user("2026-05-15T00:00:00Z", "leaves", deleted=True),
    ]
    assert column(export(events, "users"), "user_id") == ["leaves"]
    assert column(export(events, "users", "2026-05-01", "2026-05-31"), "user_id") == ["later"]


# ---- CSV bytes and request form -----------------------------------------------------
def test_csv_bytes_are_rfc4180_and_parse_back() -> None:
    result = export(_users_events(), "users")
    data = reference_csv_bytes(result)
    assert data.startswith(b"period_start,period_end,org_id,user_id,name,")
    assert data.endswith(b"\r\n")
    assert data.count(b"\r\n") == 1 + len(result.rows)
    assert b'"Idle, ""quiet""\nuser"' in data  # the newline inside a quoted cell
    assert list(csv.reader(io.StringIO(data.decode("utf-8"), newline=""))) == [
        result.header,
        *result.rows,
    ]


def test_request_form_matches_keyword_form() -> None:
    payload = {
        "org_id": ORG,
        "data_type": "agents",
        "group_by": None,
        "from": {"date": "2026-04-01", "timezone": "Europe/Berlin"},
        "to": {"date": "2026-04-30T23:59:59.999Z", "timezone": "Europe/Berlin"},
    }
    log = build_log(_agent_events(), valid_at=NOW)
    by_request = reference_request(log, payload, now=NOW)
    assert by_request.rows == export(_agent_events(), "agents", zone="Europe/Berlin").rows
    assert by_request.date_range["to"] == "2026-04-30T23:59:59.999+02:00"
    with pytest.raises(RequestRejected):
        reference_request(log, {"org_id": ORG}, now=NOW)
    # A bound without a timezone (or with null) is UTC, as the request schema says.
    for missing in ({}, {"timezone": None}):
        utc = payload | {"from": {"date": "2026-04-01"} | missing,
                         "to": {"date": "2026-04-30", "timezone": "UTC"}}  # fmt: skip
        assert reference_request(log, utc, now=NOW).date_range["from"] == "2026-04-01T00:00:00.000Z"
