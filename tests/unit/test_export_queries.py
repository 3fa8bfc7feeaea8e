"""Exports as queries (``shared.columnar.queries``) against the independent oracle
(``tests.reference``), byte for byte, on simulated streams under every combination of
workspace settings and on generated workspaces made of the tricky cases.

Raw events go both ways: through ingest's decoder into format-2 tables and the
exporter's query of the type (``tests.unit.test_export_reference.compare``), and into
the oracle, which reads the raw events itself. The two files must be identical bytes
(or both "no rows": the 404, or both the same 400).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.exporter.export_job import settings_of
from shared.domain.export.context import WorkspaceOptions
from shared.simulation import SimConfig, simulate
from tests.reference import build_log
from tests.unit.test_export_reference import (
    NOW,
    TYPES_AND_GROUPS,
    Stream,
    compare,
    ingest_in_memory,
    request,
)

OPTIONS = [
    WorkspaceOptions(byok=byok, user_level_data=private)
    for byok in (False, True)
    for private in (True, False)
]
#: (from, to, timezone): whole days, DST changes, a window cutting days in part
#: (quarter hours), a half-hour and a quarter-hour zone, clamped to now.
WINDOWS = [
    ("2026-01-01", "2026-01-31", "UTC"),
    ("2026-03-20", "2026-04-05", "Europe/Berlin"),
    ("2025-12-01", "2026-11-20", "Asia/Kolkata"),
    ("2026-10-20T06:30:00", "2026-10-26T13:15:00.000Z", "Asia/Kathmandu"),
    ("2026-02-01", "2026-06-30", "America/St_Johns"),
    ("2026-07-14T23:45:00", "2026-07-15T00:14:59", "Pacific/Chatham"),
]
ORGS = ["ws-0001", "ws-0002", "ws-0003", "ws-0004"]


def at(ms: int) -> str:
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    return moment.isoformat(timespec="milliseconds")


def settings_event(org_id: str, options: WorkspaceOptions, event_id: str) -> bytes:
    """The workspace's latest settings from now on (``occurred_at`` = now)."""
    return orjson.dumps(
        {
            "event_id": event_id,
            "type": "workspace_settings",
            "org_id": org_id,
            "occurred_at": NOW.isoformat(timespec="milliseconds"),
            "byok": options.byok,
            "user_level_data": options.user_level_data,
        }
    )


def stream_of(values: list[bytes]) -> Stream:
    return Stream(orgs=ingest_in_memory(values), log=build_log(values, valid_at=NOW))


# ---- simulated streams ----------------------------------------------------------------


@pytest.fixture(scope="module", params=[11, 12])
def simulated(request: pytest.FixtureRequest) -> list[bytes]:
    config = SimConfig(
        seed=request.param,
        orgs=4,
        events=5000,
        invalid_rate=0.02,
        late_rate=0.05,
        end=NOW - timedelta(hours=1),
    )
    return [record.value for record in simulate(config)]


@pytest.fixture(scope="module")
def streams(simulated: list[bytes]) -> list[Stream]:
    """The stream once per (BYOK, privacy) combination, set last in every workspace."""
    return [
        stream_of(
            simulated + [settings_event(org, options, f"settings-{number}-{org}") for org in ORGS]
        )
        for number, options in enumerate(OPTIONS)
    ]


@pytest.mark.parametrize(("data_type", "group_by"), TYPES_AND_GROUPS)
def test_simulated_streams_match_byte_for_byte(
    streams: list[Stream], data_type: str, group_by: str | None
) -> None:
    # Each window with two of the four (BYOK, privacy) combinations, all four covered.
    statuses = [
        compare(
            streams[(number + shift) % len(OPTIONS)],
            request(org, data_type, start, end, zone, group_by),
        )
        for number, (start, end, zone) in enumerate(WINDOWS)
        for shift in (0, 1)
        for org in ORGS
    ]
    # Most exports have rows (models have none in a window without activity); a
    # deployment grouping is refused in the half of them that are not BYOK.
    assert statuses.count(200) >= len(statuses) // (4 if group_by == "deployment" else 2)
    assert set(statuses) <= {200, 400, 404}
    assert (400 in statuses) == (group_by == "deployment")


def test_options_default_to_the_latest_settings(simulated: list[bytes]) -> None:
    stream = stream_of(simulated)
    seen = set()
    for org_id, workspace in stream.orgs.items():
        byok, user_level_data = stream.log.org(org_id).workspace_settings()
        expected = WorkspaceOptions(byok=byok, user_level_data=user_level_data)
        assert settings_of(workspace.dimensions) == expected
        seen.add(expected)
    assert len(seen) > 1  # the simulated workspaces differ in their settings


def test_forced_settings_are_the_latest(streams: list[Stream]) -> None:
    for options, stream in zip(OPTIONS, streams, strict=True):
        for org_id in ORGS:
            assert settings_of(stream.orgs[org_id].dimensions) == options


# ---- generated workspaces: the tricky cases ---------------------------------------------

ORG = "ws-1"
QUARTER = 15 * 60 * 1000
START = datetime(2026, 10, 1, 10, 0, tzinfo=UTC)
START_MS = int(START.timestamp() * 1000)
END_MS = START_MS + 8 * QUARTER
#: The window [START_MS, END_MS), as a request gives it.
EXACT = ("2026-10-01T10:00:00", "2026-10-01T11:59:59.999", "UTC")
#: Text that exercises the cell rules: the formula guard's characters, CSV quoting,
#: JSON escapes (quote, backslash, every kind of control), non-ASCII beyond the BMP.
TRICKY = 'ab=+-@\t\r\n,"\\ é\x00\x0b\x1f\x7f\u2028😀'
texts = st.text(alphabet=TRICKY, max_size=4)
#: Models, providers, sources and actions are never empty (contract: 1-256 characters).
names = st.text(alphabet=TRICKY, min_size=1, max_size=4)
instants = st.integers(START_MS - 2 * QUARTER, END_MS + 2 * QUARTER)
counts = st.integers(0, 3)  # small: ties everywhere
#: Nano-dollars around every half-even case at 6 decimals, up to the largest amount.
nanos = st.sampled_from([0, 1, 499, 500, 1500, 2500, 999_999_500, 10**9 + 500, 10**15])
USERS = ["u-1", "u-2", "u-3", "u-4", "u-5"]
AGENTS = ["ag-1", "ag-2", "ag-3"]
PROJECTS = ["p-1", "p-2", "p-3"]
KEYS = ["k-1", "k-2", "k-3"]


def usd(nano: int) -> float:
    """The JSON number of ``nano`` nano-dollars (its shortest form is exact)."""
    return nano / 10**9


@st.composite
def usage(draw: st.DrawFn) -> dict[str, Any]:
    cached, creation = draw(counts), draw(counts)
    return {
        "prompt_tokens": cached + creation + draw(counts),  # prompt includes both
        "completion_tokens": draw(counts),
        "cached_prompt_tokens": cached,
        "cache_creation_tokens": creation,
        "cost_usd": usd(draw(nanos)),
    }


@st.composite
def calls(draw: st.DrawFn) -> dict[str, Any]:
    call: dict[str, Any] = {
        "occurred_at": at(draw(instants)),
        "model": draw(names),
        "provider": draw(names),
        "byok": draw(st.booleans()),
        "source": draw(names),
        "requests": draw(st.integers(1, 3)),
        "usage": draw(usage()),
    }
    deployment = draw(st.none() | st.just("") | names)
    if deployment is not None:
        call["deployment"] = deployment
    return call


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    return draw(calls()) | {
        "type": "message",
        "user_id": draw(st.sampled_from(USERS)),
        "assistant_id": draw(st.none() | st.sampled_from(AGENTS)),
        "project_id": draw(st.none() | st.sampled_from(PROJECTS)),
        "conversation_id": draw(st.none() | st.sampled_from(["c-1", "c-2"])),
        "actions": draw(st.lists(names, max_size=3)),  # repeats count once
    }


@st.composite
def api_requests(draw: st.DrawFn) -> dict[str, Any]:
    return draw(calls()) | {"type": "api_request", "api_key_id": draw(st.sampled_from(KEYS))}


@st.composite
def paygs(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "type": "payg_consumption",
        "occurred_at": at(draw(instants)),
        "user_id": draw(st.sampled_from(USERS)),
        "amount": usd(draw(nanos)),
    }


UPSERTS = {
    "user_upserted": ("user_id", USERS, ("name", "email", "role", "joined_at", "department",
                                          "company_name", "license_type")),
    "agent_upserted": ("assistant_id", AGENTS, ("name", "description", "url", "owner_id",
                                                "owner_email")),
    "project_upserted": ("project_id", PROJECTS, ("name", "owner_id", "owner_email")),
    "api_key_upserted": ("api_key_id", KEYS, ("name",)),
}  # fmt: skip


@st.composite
def upserts(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(sorted(UPSERTS)))
    id_field, entities, attributes = UPSERTS[kind]
    # Versions at the same instant are ordered by event id; some fall on the end exactly.
    moment = draw(st.sampled_from([START_MS - 1, END_MS - 1, END_MS, END_MS + 1]) | instants)
    event: dict[str, Any] = {
        "type": kind,
        "occurred_at": at(moment),
        id_field: draw(st.sampled_from(entities)),
        "deleted": draw(st.booleans()),
    }
    for name in attributes:
        value = draw(st.none() | (st.just("2025-05-01") if name == "joined_at" else texts))
        if value is not None:
            event[name] = value
    if kind == "user_upserted":
        limit = draw(st.none() | st.just(0) | nanos)
        if limit is not None:
            event["payg_limit"] = usd(limit)
    return event


@st.composite
def workspaces(draw: st.DrawFn) -> list[bytes]:
    """A workspace's raw events: activity, then upserts (ids that tie both ways)."""
    activity = draw(st.lists(messages() | api_requests() | paygs(), max_size=25))
    events = [event | {"event_id": f"e-{n}"} for n, event in enumerate(activity)]
    for n, event in enumerate(draw(st.lists(upserts(), max_size=12))):
        events.append(event | {"event_id": draw(st.sampled_from([f"d-{n}", f"d-{99 - n}"]))})
    return [orjson.dumps(event | {"org_id": ORG}) for event in events]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=workspaces(), options=st.sampled_from(OPTIONS))
def test_generated_workspaces_match_byte_for_byte(
    values: list[bytes], options: WorkspaceOptions
) -> None:
    stream = stream_of([*values, settings_event(ORG, options, "settings-1")])
    # Every generated event is valid: both sides hold all of them.
    org = stream.log.org(ORG)
    activity = len(org.messages) + len(org.api_requests) + len(org.payg)
    assert stream.log.invalid == 0
    assert stream.orgs[ORG].facts.num_rows == activity
    for data_type, group_by in TYPES_AND_GROUPS:
        status = compare(stream, request(ORG, data_type, *EXACT, group_by=group_by))
        if group_by == "deployment" and not options.byok:
            assert status == 400
        else:
            assert status in (200, 404)


def test_no_rows_is_no_file() -> None:
    """A window without activity in a workspace without entities: the exporter's 404."""
    after = {"type": "payg_consumption", "occurred_at": at(END_MS + 1), "user_id": "u-1"}
    stream = stream_of([orjson.dumps(after | {"event_id": "e-1", "org_id": ORG, "amount": 5})])
    for data_type, group_by in TYPES_AND_GROUPS:
        expected = 400 if group_by == "deployment" else 404  # not BYOK: refused first
        assert compare(stream, request(ORG, data_type, *EXACT, group_by=group_by)) == expected
