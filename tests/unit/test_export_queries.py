"""Exports as queries (``shared.columnar.queries``) against today's engine, byte for byte.

The same accepted events feed (a) the production path in-process — the aggregate folded
from the window's facts, ``build_table`` and the exporter's CSV writer — and (b) the
columnar path — ``facts_table`` / ``dimensions_table``, the DuckDB query of the type, the
Arrow-to-CSV step. The two files must be identical bytes (or both "no rows": the 404).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.exporter.csv_writer import write_csv
from shared.columnar.queries import connect, export_csv, workspace_options
from shared.columnar.schema import DimensionVersion, dimensions_table, facts_table
from shared.contracts.requests import DataType
from shared.domain.aggregate import Aggregate
from shared.domain.dimensions import DimensionHistory
from shared.domain.export.context import ExportInputs, WorkspaceOptions
from shared.domain.export.table import build_table
from shared.domain.facts import API_REQUEST, MESSAGE, PAYG, TS, Fact
from shared.domain.window import Window, resolve_window
from shared.simulation import SimConfig, simulate
from tests.unit.test_export_reference import NOW, OrgState, ingest_in_memory

TYPES_AND_GROUPS = [
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


class _Sink:
    def __init__(self) -> None:
        self.data = bytearray()

    async def write(self, data: bytes) -> None:
        self.data += data


@dataclass(frozen=True)
class Export:
    data_type: DataType
    group_by: str | None
    window: Window
    options: WorkspaceOptions


def production_csv(org_id: str, org: OrgState, export: Export) -> bytes | None:
    """Today's engine: the window's aggregate, the row builders, the CSV writer."""
    aggregate = Aggregate()
    for fact in org.facts:
        if export.window.contains(fact[TS]):
            aggregate.add(fact)
    table = build_table(
        ExportInputs(
            org_id=org_id,
            data_type=export.data_type,
            group_by=export.group_by,
            period_start=export.window.period_start().isoformat(),
            period_end=export.window.period_end().isoformat(),
            end_ms=export.window.end_ms,
            aggregate=aggregate,
            options=export.options,
            dims=org.dims,
        )
    )
    if not len(table):
        return None
    sink = _Sink()
    # A small buffer, so that the writer's chunking is part of what is compared.
    asyncio.run(write_csv(table.header, table.rows(), sink, flush_chars=512))
    return bytes(sink.data)


def versions(dims: dict[str, DimensionHistory]) -> list[DimensionVersion]:
    return [
        (kind, entity_id, version[0], version[1], version[2])
        for kind, history in dims.items()
        for entity_id, entity_versions in history.versions.items()
        for version in entity_versions
    ]


def query_csv(org_id: str, org: OrgState, export: Export) -> bytes | None:
    con = _connections.get(id(org))
    if con is None:
        tables = facts_table(org_id, org.facts), dimensions_table(org_id, versions(org.dims))
        con = _connections[id(org)] = connect(*tables)
    result = export_csv(
        con,
        export.data_type,
        org_id=org_id,
        group_by=export.group_by,
        start_ms=export.window.start_ms,
        end_ms=export.window.end_ms,
        period_start=export.window.period_start().isoformat(),
        period_end=export.window.period_end().isoformat(),
        options=export.options,
    )
    return result.data if result.rows else None


#: One connection per workspace state (its tables converted once).
_connections: dict[int, duckdb.DuckDBPyConnection] = {}


def assert_same(org_id: str, org: OrgState, exports: Iterable[Export]) -> int:
    """Both engines agree on every export; returns how many had rows."""
    with_rows = 0
    for export in exports:
        expected = production_csv(org_id, org, export)
        actual = query_csv(org_id, org, export)
        if expected != actual and expected is not None and actual is not None:
            for number, (mine, theirs) in enumerate(
                zip(actual.split(b"\r\n"), expected.split(b"\r\n"), strict=False)
            ):
                assert mine == theirs, f"{export}: line {number}"
        assert actual == expected, export
        with_rows += expected is not None
    return with_rows


def window(start: str, end: str, zone: str) -> Window:
    return resolve_window(start, zone, end, zone, now=NOW)


# ---- simulated streams ----------------------------------------------------------------


@pytest.fixture(scope="module", params=[11, 12])
def orgs(request: pytest.FixtureRequest) -> dict[str, OrgState]:
    config = SimConfig(
        seed=request.param,
        orgs=4,
        events=5000,
        invalid_rate=0.02,
        late_rate=0.05,
        end=NOW - timedelta(hours=1),
    )
    return ingest_in_memory([record.value for record in simulate(config)])


@pytest.mark.parametrize(("data_type", "group_by"), TYPES_AND_GROUPS)
def test_simulated_streams_match_byte_for_byte(
    orgs: dict[str, OrgState], data_type: DataType, group_by: str | None
) -> None:
    # Each window with two of the four (BYOK, privacy) combinations, all four covered.
    exports = [
        Export(data_type, group_by, window(*bounds), OPTIONS[(number + shift) % len(OPTIONS)])
        for number, bounds in enumerate(WINDOWS)
        for shift in (0, 1)
    ]
    with_rows = sum(assert_same(org_id, org, exports) for org_id, org in sorted(orgs.items()))
    # Most exports have rows (models have none in a window without activity).
    assert with_rows >= len(exports) * len(orgs) // 2


def test_options_default_to_the_latest_settings(orgs: dict[str, OrgState]) -> None:
    seen = set()
    for org_id, org in orgs.items():
        con = connect(facts_table(org_id, org.facts), dimensions_table(org_id, versions(org.dims)))
        expected = WorkspaceOptions.latest(org.dims.get("settings") or DimensionHistory())
        assert workspace_options(con) == expected
        seen.add(expected)
    assert len(seen) > 1  # the simulated workspaces differ in their settings


# ---- generated workspaces: the tricky cases ---------------------------------------------

QUARTER = 15 * 60 * 1000
START_MS = 20_000 * 86_400_000
END_MS = START_MS + 8 * QUARTER
EXACT = Window(START_MS, END_MS, ZoneInfo("UTC"), ZoneInfo("UTC"))
#: Text that exercises the cell rules: the formula guard's characters, CSV quoting,
#: JSON escapes (quote, backslash, every kind of control), non-ASCII beyond the BMP.
TRICKY = 'ab=+-@\t\r\n,"\\ é\x00\x0b\x1f\x7f\u2028😀'
texts = st.text(alphabet=TRICKY, max_size=4)
#: Models, providers, sources and actions are never empty (contract: 1-256 characters).
names = st.text(alphabet=TRICKY, min_size=1, max_size=4)
instants = st.integers(START_MS - 2 * QUARTER, END_MS + 2 * QUARTER)
counts = st.integers(0, 3)  # small: ties everywhere
#: Nano-dollars around every half-even case at 6 decimals.
nanos = st.sampled_from([0, 1, 499, 500, 1500, 2500, 999_999_500, 10**9 + 500, 7 * 10**15])
USERS = ["u-1", "u-2", "u-3", "u-4", "u-5"]
AGENTS = ["ag-1", "ag-2", "ag-3"]
PROJECTS = ["p-1", "p-2", "p-3"]
KEYS = ["k-1", "k-2", "k-3"]


@st.composite
def messages(draw: st.DrawFn) -> Fact:
    return (
        MESSAGE, "", draw(instants), draw(st.sampled_from(USERS)),
        draw(st.none() | st.sampled_from(AGENTS)), draw(st.none() | st.sampled_from(PROJECTS)),
        draw(st.none() | st.sampled_from(["c-1", "c-2"])), draw(names), draw(names),
        draw(st.booleans()), draw(st.just("") | names), draw(names),
        sorted(draw(st.sets(names, max_size=3))), draw(st.integers(1, 3)),
        draw(counts), draw(counts), draw(counts), draw(counts), draw(nanos),
    )  # fmt: skip


@st.composite
def api_requests(draw: st.DrawFn) -> Fact:
    return (
        API_REQUEST, "", draw(instants), draw(st.sampled_from(KEYS)), draw(names),
        draw(names), draw(st.booleans()), draw(st.just("") | names), draw(names),
        draw(st.integers(1, 3)),
        draw(counts), draw(counts), draw(counts), draw(counts), draw(nanos),
    )  # fmt: skip


@st.composite
def paygs(draw: st.DrawFn) -> Fact:
    return (PAYG, "", draw(instants), draw(st.sampled_from(USERS)), draw(nanos))


ATTRIBUTES = {
    "users": ("name", "email", "role", "joined_at", "department", "company_name",
              "license_type"),
    "agents": ("name", "description", "url", "owner_id", "owner_email"),
    "projects": ("name", "owner_id", "owner_email"),
    "api_keys": ("name",),
}  # fmt: skip
ENTITIES = {"users": USERS, "agents": AGENTS, "projects": PROJECTS, "api_keys": KEYS}


@st.composite
def dimension_versions(draw: st.DrawFn) -> tuple[str, str, int, dict[str, object]]:
    kind = draw(st.sampled_from(sorted(ATTRIBUTES)))
    attributes: dict[str, object] = {name: draw(st.none() | texts) for name in ATTRIBUTES[kind]}
    if kind == "users":
        attributes["payg_limit"] = draw(st.none() | st.just(0) | nanos)
    attributes["deleted"] = draw(st.booleans())
    # Versions at the same instant are ordered by event id; some fall on the end exactly.
    at = draw(st.sampled_from([START_MS - 1, END_MS - 1, END_MS, END_MS + 1]) | instants)
    return kind, draw(st.sampled_from(ENTITIES[kind])), at, attributes


@st.composite
def workspaces(draw: st.DrawFn) -> OrgState:
    facts = draw(st.lists(messages() | api_requests() | paygs(), max_size=25))
    org = OrgState(facts=[(fact[0], f"e-{n}", *fact[2:]) for n, fact in enumerate(facts)])
    for n, (kind, entity, at, attributes) in enumerate(
        draw(st.lists(dimension_versions(), max_size=12))
    ):
        history = org.dims.setdefault(kind, DimensionHistory())
        event_id = draw(st.sampled_from([f"d-{n}", f"d-{99 - n}"]))
        history.add(entity, at, event_id, attributes)
    return org


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(org=workspaces(), options=st.sampled_from(OPTIONS))
def test_generated_workspaces_match_byte_for_byte(org: OrgState, options: WorkspaceOptions) -> None:
    exports = [
        Export(data_type, group_by, EXACT, options) for data_type, group_by in TYPES_AND_GROUPS
    ]
    try:
        assert_same("ws-=1", org, exports)
    finally:
        _connections.pop(id(org), None)


def test_no_rows_is_no_file() -> None:
    """A window without activity in a workspace without entities: the exporter's 404."""
    org = OrgState(facts=[(PAYG, "e-1", END_MS + 1, "u-1", 5)])
    for data_type, group_by in TYPES_AND_GROUPS:
        export = Export(data_type, group_by, EXACT, WorkspaceOptions())
        assert query_csv("ws-1", org, export) is None
        assert production_csv("ws-1", org, export) is None
