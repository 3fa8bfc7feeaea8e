"""Roll-ups (``shared.columnar.rollups``): a users export that reads the janitor's
partials of the month files its window covers whole is byte for byte the export of the
facts alone (which ``test_export_queries`` holds against the oracle), in every window
shape: whole months, months cut in part, quarter hours, zones far from UTC, with late
day files in a rolled-up month and roll-ups of files that are gone.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest
from deltalake import DeltaTable, write_deltalake

from services.exporter.export_job import query_export, settings_of
from services.ingest import janitor as janitor_module
from shared.columnar.rollups import (
    choose,
    facts_files,
    forget,
    missing,
    open_rollups,
    rolled_up_sources,
    user_parts,
    users_read,
)
from shared.columnar.schema import SPAN, STORED_FACTS, with_spans
from shared.columnar.tables import FACTS_TABLE, USER_ROLLUPS_TABLE, TableStore
from shared.contracts.export_types import DataType, spec
from shared.domain.export.request_validation import ReadableRequest, ValidRequest, validate_request
from shared.domain.window import utc_day_of
from tests.unit.test_export_reference import NOW, Stream, Workspace, request
from tests.unit.test_export_reference import stream as stream  # the fixture, re-exported

WINDOWS = [
    ("2025-11-21", "2026-11-20", "UTC"),  # 12 months to today
    ("2025-11-21", "2026-11-20", "Pacific/Kiritimati"),  # UTC+14
    ("2025-11-21", "2026-11-20", "Pacific/Pago_Pago"),  # UTC-11
    ("2026-01-01", "2026-06-30", "UTC"),  # whole months only
    ("2026-01-01", "2026-06-30", "Asia/Kolkata"),  # the same, each month cut in part
    ("2026-02-15", "2026-06-30", "UTC"),  # starts in the middle of February's file
    ("2026-01-01", "2026-04-10", "UTC"),  # ends in the middle of April's
    ("2026-03-20", "2026-04-05", "Europe/Berlin"),
    ("2026-02-01T06:30:00", "2026-09-26T13:15:00.000Z", "Asia/Kathmandu"),
    ("2026-02-01", "2026-06-30", "America/St_Johns"),
]
#: A closed month a few of whose rows arrive late, after its merge: they stay day files.
LATE_MONTH = "2026-05"


def valid(payload: dict[str, object]) -> ValidRequest:
    readable = ReadableRequest(request_id="r-1", org_id=str(payload["org_id"]), payload=payload)
    validated = validate_request(readable, now=NOW)
    assert isinstance(validated, ValidRequest), validated
    return validated


def stored_facts(facts: pa.Table) -> pa.Table:
    """``facts`` with the spans ingest and the janitor give them by NOW: merged month files
    for the closed months (every 10th row of LATE_MONTH late, in day files), day files
    for the current month."""
    months = pc.strftime(facts.column("day"), "%Y-%m")
    current = NOW.date().isoformat()[:7]
    late = pc.and_(
        pc.equal(months, LATE_MONTH),
        pc.equal(pc.bit_wise_and(pa.array(range(facts.num_rows), pa.int64()), 7), 0),
    )
    as_day = pc.or_(pc.equal(months, current), late)
    day_spans = with_spans(facts).column(SPAN)
    month_spans = with_spans(facts, month=True).column(SPAN)
    spans = pc.if_else(as_day, day_spans, month_spans)
    return facts.append_column(STORED_FACTS.field(SPAN), spans).cast(STORED_FACTS)


def seeded(tmp_path: Path, org: str, workspace: Workspace) -> TableStore:
    store = TableStore.local(str(tmp_path))
    rows = stored_facts(workspace.facts)
    write_deltalake(store.uri(org, FACTS_TABLE), rows, partition_by=[SPAN])
    return store


def rolled_up_export(store: TableStore, workspace: Workspace, validated: ValidRequest) -> bytes:
    """The exporter's users read (``users_read``) and query over it."""
    org, window = validated.org_id, validated.window
    facts = DeltaTable(store.uri(org, FACTS_TABLE))
    rollups = open_rollups(store.uri(org, USER_ROLLUPS_TABLE), {}, create=False)
    first, last = utc_day_of(window.start_ms), utc_day_of(window.last_ms)
    read = users_read(facts, rollups, first, last, window.start_ms, window.end_ms)
    options = settings_of(workspace.dimensions)
    export = query_export(validated, read.facts, workspace.dimensions, options, read.rollups)
    return export.data


def facts_only_export(workspace: Workspace, validated: ValidRequest) -> bytes:
    facts = workspace.facts.select(list(spec(DataType.USERS).facts_columns))
    options = settings_of(workspace.dimensions)
    return query_export(validated, facts, workspace.dimensions, options).data


def roll_up_all(store: TableStore, org: str) -> int:
    facts = DeltaTable(store.uri(org, FACTS_TABLE))
    return janitor_module._roll_up(facts, store.uri(org, USER_ROLLUPS_TABLE), {})


@pytest.mark.parametrize("org", ["ws-0001", "ws-0002"])
def test_exports_that_read_roll_ups_equal_exports_of_the_facts(
    tmp_path: Path, stream: Stream, org: str
) -> None:
    workspace = stream.orgs[org]
    store = seeded(tmp_path, org, workspace)
    months = {f.span for f in facts_files(DeltaTable(store.uri(org, FACTS_TABLE)))}
    rolled = roll_up_all(store, org)
    # One roll-up per month file, and one merged roll-up of them all.
    assert rolled == len([span for span in months if len(span) == 7]) + 1 >= 11
    assert roll_up_all(store, org) == 0  # once per file
    used = 0
    for start, end, zone in WINDOWS:
        validated = valid(request(org, "users", start, end, zone))
        assert rolled_up_export(store, workspace, validated) == facts_only_export(
            workspace, validated
        ), (start, end, zone)
        window = validated.window
        facts = DeltaTable(store.uri(org, FACTS_TABLE))
        rollups = open_rollups(store.uri(org, USER_ROLLUPS_TABLE), {}, create=False)
        first, last = utc_day_of(window.start_ms), utc_day_of(window.last_ms)
        read = users_read(facts, rollups, first, last, window.start_ms, window.end_ms)
        used += read.rolled_up_files
        if (start, zone) == ("2025-11-21", "UTC"):
            assert read.rolled_up_files >= 10  # every closed month, read as partials
            assert isinstance(read.rollups, ds.Dataset)
            sources = read.rollups.to_table(columns=["source"]).column("source").unique()
            assert [s.startswith("merged-") for s in sources.to_pylist()] == [True]
    assert used >= 20


def test_a_window_that_cuts_a_month_file_reads_its_facts(tmp_path: Path, stream: Stream) -> None:
    org = "ws-0001"
    workspace = stream.orgs[org]
    store = seeded(tmp_path, org, workspace)
    roll_up_all(store, org)
    facts = DeltaTable(store.uri(org, FACTS_TABLE))
    rollups = open_rollups(store.uri(org, USER_ROLLUPS_TABLE), {}, create=False)
    whole = valid(request(org, "users", "2026-01-01", "2026-06-30", "UTC")).window
    cut = valid(request(org, "users", "2026-01-01", "2026-06-30", "Asia/Kolkata")).window
    days = (date(2025, 12, 31), date(2026, 6, 30))
    in_whole = users_read(facts, rollups, *days, whole.start_ms, whole.end_ms)
    in_cut = users_read(facts, rollups, *days, cut.start_ms, cut.end_ms)
    # January to June UTC: 6 month files whole. In +05:30 the window starts 5.5 h before
    # January's file and ends 5.5 h before June's last row: June's file is read as facts.
    assert in_whole.rolled_up_files == 6
    assert in_cut.rolled_up_files == 5


def test_a_replaced_file_s_roll_up_is_not_used_and_is_forgotten(
    tmp_path: Path, stream: Stream
) -> None:
    org = "ws-0003"
    workspace = stream.orgs[org]
    store = seeded(tmp_path, org, workspace)
    roll_up_all(store, org)
    uri = store.uri(org, FACTS_TABLE)
    facts = DeltaTable(uri)
    march = [f for f in facts_files(facts) if f.span == "2026-03"]
    assert len(march) == 1
    # The janitor merges March again (say, with late rows): a new file replaces the old.
    rows = facts.to_pyarrow_dataset(file_pruning_predicate=[(SPAN, "=", "2026-03")]).to_table()
    write_deltalake(
        uri, rows.select(STORED_FACTS.names), mode="overwrite", predicate="span = '2026-03'"
    )
    facts = DeltaTable(uri)
    rollups = open_rollups(store.uri(org, USER_ROLLUPS_TABLE), {}, create=False)
    assert rollups is not None
    [new] = [f for f in facts_files(facts) if f.span == "2026-03"]
    assert new.name != march[0].name
    assert missing(facts_files(facts), rolled_up_sources(rollups)) == [new]
    twelve = valid(request(org, "users", "2025-11-21", "2026-11-20", "UTC"))
    assert rolled_up_export(store, workspace, twelve) == facts_only_export(workspace, twelve)
    validated = valid(request(org, "users", "2026-01-01", "2026-06-30", "UTC"))
    # Before the new file's roll-up: March is read as facts, the stale roll-up ignored.
    assert rolled_up_export(store, workspace, validated) == facts_only_export(workspace, validated)
    window = validated.window
    read = users_read(
        facts, rollups, date(2026, 1, 1), date(2026, 6, 30), window.start_ms, window.end_ms
    )
    assert read.rolled_up_files == 5
    assert roll_up_all(store, org) == 2  # March's new file, and a new merged roll-up
    rollups = open_rollups(store.uri(org, USER_ROLLUPS_TABLE), {}, create=False)
    assert rollups is not None
    assert forget(rollups, facts_files(facts)) == 2  # the old file's and the old merged
    assert march[0].name not in rolled_up_sources(rollups)
    assert rolled_up_export(store, workspace, twelve) == facts_only_export(workspace, twelve)
    assert rolled_up_export(store, workspace, validated) == facts_only_export(workspace, validated)


def test_roll_ups_are_chosen_largest_first_and_never_overlap() -> None:
    index = {
        "a": frozenset({"a"}),
        "b": frozenset({"b"}),
        "c": frozenset({"c"}),
        "merged-ab": frozenset({"a", "b"}),
        "merged-abc": frozenset({"a", "b", "c"}),
        "merged-bc": frozenset({"b", "c"}),
    }
    assert choose(index, {"a", "b", "c", "d"}) == {"merged-abc": index["merged-abc"]}
    assert choose(index, {"a", "b"}) == {"merged-ab": index["merged-ab"]}
    assert choose(index, {"b", "c"}) == {"merged-bc": index["merged-bc"]}
    assert choose(index, {"a", "c"}) == {"a": index["a"], "c": index["c"]}
    assert choose(index, set()) == {}


def test_partials_of_disjoint_facts_add_up_to_the_partials_of_their_union(
    stream: Stream,
) -> None:
    facts = stream.orgs["ws-0004"].facts.select(list(spec(DataType.USERS).facts_columns))
    half = facts.num_rows // 2
    both = pa.concat_tables([user_parts(facts.slice(0, half)), user_parts(facts.slice(half))])
    key = ["part", "user_id", "subgroup", "key"]
    measures = [name for name in both.column_names if name not in key]
    summed = both.group_by(key, use_threads=False).aggregate([(m, "sum") for m in measures])
    summed = summed.rename_columns([name.removesuffix("_sum") for name in summed.column_names])
    whole = user_parts(facts)
    order = [(name, "ascending") for name in key]
    assert (
        summed.select(whole.column_names).sort_by(order).to_pylist()
        == whole.sort_by(order).to_pylist()
    )


def test_a_month_without_users_activity_is_rolled_up_once(tmp_path: Path, stream: Stream) -> None:
    org = "ws-0002"
    full = stream.orgs[org]
    months = pc.strftime(full.facts.column("day"), "%Y-%m")
    users_kinds = pc.is_in(full.facts.column("kind"), pa.array(["message", "payg"]))
    # February holds API requests only: its roll-up has no partial, yet must exist.
    keep = pc.invert(pc.and_(pc.equal(months, "2026-02"), users_kinds))
    workspace = Workspace(full.facts.filter(keep), full.dimensions)
    store = seeded(tmp_path, org, workspace)
    made = roll_up_all(store, org)
    assert made >= 11
    assert roll_up_all(store, org) == 0  # not made again every round
    rollups = open_rollups(store.uri(org, USER_ROLLUPS_TABLE), {}, create=False)
    assert rollups is not None
    february = [
        f.name for f in facts_files(DeltaTable(store.uri(org, FACTS_TABLE))) if f.span == "2026-02"
    ]
    rows = rollups.to_pyarrow_dataset(file_pruning_predicate=[("source", "in", february)])
    assert rows.to_table(columns=["part"]).column("part").to_pylist() == ["empty"]
    for start, end in (("2026-01-01", "2026-03-31"), ("2025-11-21", "2026-11-20")):
        validated = valid(request(org, "users", start, end, "UTC"))
        assert rolled_up_export(store, workspace, validated) == facts_only_export(
            workspace, validated
        )
