"""Roll-ups (``shared.columnar.rollups``): an export that reads the janitor's partials of
the month files its window covers whole (the users partials, the sums per key of the
api_keys, models and projects exports, or the agent messages' partials of the agents
export) is byte for byte the export of the facts alone
(which ``test_export_reference`` holds against the oracle), for every type and subgroup
that reads roll-ups, in every window shape: whole months, months cut in part, quarter
hours, zones far from UTC, with late day files in a rolled-up month and roll-ups of files
that are gone.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest
from deltalake import DeltaTable, write_deltalake

from services.compactor import janitor as janitor_module
from services.exporter.export_job import query_export, settings_of
from shared.columnar.queries.engine import ROLLUP_RELATIONS
from shared.columnar.rollups import (
    AGENT_PARTS,
    KEY_SUMS,
    ROLLUP_KINDS,
    USER_PARTS,
    RolledUpRead,
    RollupKind,
    choose,
    facts_files,
    forget,
    missing,
    open_rollups,
    parts_of,
    rolled_up_read,
    rolled_up_sources,
    rollup_kind,
    rollup_members,
)
from shared.columnar.schema import (
    FACTS,
    MEMBERS,
    SPAN,
    STORED_FACTS,
    dimensions_table,
    with_spans,
)
from shared.columnar.tables import FACTS_TABLE, TableStore
from shared.contracts.export_types import DataType, spec
from shared.domain.export.request_validation import ReadableRequest, ValidRequest, validate_request
from shared.domain.window import utc_day_of
from tests.unit.test_export_reference import NOW, TYPES_AND_GROUPS, Stream, Workspace, request
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
#: The types and subgroups whose exports read roll-ups.
ROLLED_UP = [
    (data_type, group_by)
    for data_type, group_by in TYPES_AND_GROUPS
    if rollup_kind(DataType.parse(data_type), group_by) is not None
]


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


def read_of(store: TableStore, validated: ValidRequest) -> RolledUpRead:
    """What the exporter reads for ``validated`` (``rolled_up_read``) from ``store``."""
    kind = rollup_kind(validated.data_type, validated.group_by)
    assert kind is not None
    org, window = validated.org_id, validated.window
    facts = DeltaTable(store.uri(org, FACTS_TABLE))
    rollups = open_rollups(kind, store.uri(org, kind.table), {}, create=False)
    first, last = utc_day_of(window.start_ms), utc_day_of(window.last_ms)
    schema = pa.schema([FACTS.field(name) for name in spec(validated.data_type).facts_columns])
    return rolled_up_read(kind, facts, rollups, schema, first, last, window.start_ms, window.end_ms)


def rolled_up_export(store: TableStore, workspace: Workspace, validated: ValidRequest) -> bytes:
    """The exporter's read (``rolled_up_read``) and query over it."""
    kind = rollup_kind(validated.data_type, validated.group_by)
    assert kind is not None
    read = read_of(store, validated)
    options = settings_of(workspace.dimensions)
    rollups = {kind.table: read.rollups}
    return query_export(validated, read.facts, workspace.dimensions, options, rollups).data


def facts_only_export(workspace: Workspace, validated: ValidRequest) -> bytes:
    facts = workspace.facts.select(list(spec(validated.data_type).facts_columns))
    options = settings_of(workspace.dimensions)
    return query_export(validated, facts, workspace.dimensions, options).data


def roll_up_all(store: TableStore, org: str, kinds: tuple[RollupKind, ...] = ROLLUP_KINDS) -> int:
    """The janitor's roll-up step for ``kinds``: how many roll-ups it made."""
    facts = DeltaTable(store.uri(org, FACTS_TABLE))
    return sum(
        janitor_module._roll_up(kind, facts, store.uri(org, kind.table), {}) for kind in kinds
    )


@pytest.mark.parametrize("org", ["ws-0001", "ws-0002"])
def test_exports_that_read_roll_ups_equal_exports_of_the_facts(
    tmp_path: Path, stream: Stream, org: str
) -> None:
    workspace = stream.orgs[org]
    store = seeded(tmp_path, org, workspace)
    months = {f.span for f in facts_files(DeltaTable(store.uri(org, FACTS_TABLE)))}
    rolled = roll_up_all(store, org)
    # Of each kind: one roll-up per month file, and one merged roll-up of them all.
    per_kind = len([span for span in months if len(span) == 7]) + 1
    assert rolled == len(ROLLUP_KINDS) * per_kind
    assert per_kind >= 11
    assert roll_up_all(store, org) == 0  # once per file
    for data_type, group_by in ROLLED_UP:
        used = 0
        for start, end, zone in WINDOWS:
            validated = valid(request(org, data_type, start, end, zone, group_by))
            assert rolled_up_export(store, workspace, validated) == facts_only_export(
                workspace, validated
            ), (data_type, group_by, start, end, zone)
            read = read_of(store, validated)
            used += read.rolled_up_files
            if (start, zone) == ("2025-11-21", "UTC"):
                assert read.rolled_up_files >= 10  # every closed month, read as partials
                assert isinstance(read.rollups, ds.Dataset)
                kind = rollup_kind(validated.data_type, group_by)
                assert kind is not None
                names = read.rollups.to_table(columns=[kind.name]).column(kind.name).unique()
                assert [s.startswith("merged-") for s in names.to_pylist()] == [True]
        assert used >= 20, (data_type, group_by)


def test_a_window_that_cuts_a_month_file_reads_its_facts(tmp_path: Path, stream: Stream) -> None:
    org = "ws-0001"
    workspace = stream.orgs[org]
    store = seeded(tmp_path, org, workspace)
    roll_up_all(store, org)
    whole = valid(request(org, "models", "2026-01-01", "2026-06-30", "UTC"))
    cut = valid(request(org, "models", "2026-01-01", "2026-06-30", "Asia/Kolkata"))
    in_whole = read_of(store, whole)
    in_cut = read_of(store, cut)
    # January to June UTC: 6 month files whole. In +05:30 the window starts 5.5 h before
    # January's file and ends 5.5 h before June's last row: June's file is read as facts.
    assert in_whole.rolled_up_files == 6
    assert in_cut.rolled_up_files == 5


@pytest.mark.parametrize(
    ("kind", "data_type"),
    [(USER_PARTS, "users"), (KEY_SUMS, "api_keys"), (AGENT_PARTS, "assistants")],
)
def test_a_replaced_file_s_roll_up_is_not_used_and_is_forgotten(
    tmp_path: Path, stream: Stream, kind: RollupKind, data_type: str
) -> None:
    org = "ws-0003"
    workspace = stream.orgs[org]
    store = seeded(tmp_path, org, workspace)
    roll_up_all(store, org, (kind,))
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
    rollups = open_rollups(kind, store.uri(org, kind.table), {}, create=False)
    assert rollups is not None
    [new] = [f for f in facts_files(facts) if f.span == "2026-03"]
    assert new.name != march[0].name
    assert missing(facts_files(facts), rolled_up_sources(kind, rollups)) == [new]
    twelve = valid(request(org, data_type, "2025-11-21", "2026-11-20", "UTC"))
    assert rolled_up_export(store, workspace, twelve) == facts_only_export(workspace, twelve)
    validated = valid(request(org, data_type, "2026-01-01", "2026-06-30", "UTC"))
    # Before the new file's roll-up: March is read as facts, the stale roll-up ignored.
    assert rolled_up_export(store, workspace, validated) == facts_only_export(workspace, validated)
    assert read_of(store, validated).rolled_up_files == 5
    assert roll_up_all(store, org, (kind,)) == 2  # March's new file, and a new merged one
    rollups = open_rollups(kind, store.uri(org, kind.table), {}, create=False)
    assert rollups is not None
    assert forget(kind, rollups, facts_files(facts)) == 2  # the old file's and the old merged
    assert march[0].name not in rolled_up_sources(kind, rollups)
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


@pytest.mark.parametrize("kind", ROLLUP_KINDS)
def test_partials_of_disjoint_facts_combine_into_the_partials_of_their_union(
    stream: Stream, kind: RollupKind
) -> None:
    facts = stream.orgs["ws-0004"].facts.select(list(kind.facts_columns))
    half = facts.num_rows // 2
    both = pa.concat_tables(
        [parts_of(kind, facts.slice(0, half)), parts_of(kind, facts.slice(half))]
    )
    key = list(kind.keys)
    measures = [name for name in both.column_names if name not in key]
    combined = both.group_by(key, use_threads=False).aggregate(
        [(m, kind.combined(m)) for m in measures]
    )
    named = {f"{m}_{kind.combined(m)}": m for m in measures}
    summed = combined.rename_columns([named.get(n, n) for n in combined.column_names])
    whole = parts_of(kind, facts)
    order = [(name, "ascending") for name in key]
    assert whole.num_rows < facts.num_rows
    assert (
        summed.select(whole.column_names).sort_by(order).to_pylist()
        == whole.sort_by(order).to_pylist()
    )


def test_each_roll_up_names_its_members_in_one_row(tmp_path: Path, stream: Stream) -> None:
    org = "ws-0001"
    store = seeded(tmp_path, org, stream.orgs[org])
    roll_up_all(store, org)
    files = {f.name for f in facts_files(DeltaTable(store.uri(org, FACTS_TABLE)))}
    for kind in ROLLUP_KINDS:
        assert kind.read_rows == ROLLUP_RELATIONS[kind.table]  # what the queries bind to
        rollups = open_rollups(kind, store.uri(org, kind.table), {}, create=False)
        assert rollups is not None
        rows = rollups.to_pyarrow_table(columns=[kind.name, kind.marker, MEMBERS])
        marked = rows.filter(pc.is_valid(rows.column(MEMBERS)))
        index = rollup_members(kind, rollups)
        # One members row per roll-up, and only there; a month file's is its own name.
        assert sorted(marked.column(kind.name).to_pylist()) == sorted(index)
        assert set(marked.column(kind.marker).to_pylist()) == {"members"}
        assert all(members <= files for members in index.values())
        merged = [source for source in index if source.startswith("merged-")]
        assert len(merged) == 1
        assert len(index[merged[0]]) == len(index) - 1


def test_a_month_without_users_activity_is_rolled_up_once(tmp_path: Path, stream: Stream) -> None:
    org = "ws-0002"
    full = stream.orgs[org]
    months = pc.strftime(full.facts.column("day"), "%Y-%m")
    users_kinds = pc.is_in(full.facts.column("kind"), pa.array(["message", "payg"]))
    # February holds API requests only: its roll-up has no partial, only its members row.
    keep = pc.invert(pc.and_(pc.equal(months, "2026-02"), users_kinds))
    workspace = Workspace(full.facts.filter(keep), full.dimensions)
    store = seeded(tmp_path, org, workspace)
    made = roll_up_all(store, org, (USER_PARTS,))
    assert made >= 11
    assert roll_up_all(store, org, (USER_PARTS,)) == 0  # not made again every round
    rollups = open_rollups(USER_PARTS, store.uri(org, USER_PARTS.table), {}, create=False)
    assert rollups is not None
    february = [
        f.name for f in facts_files(DeltaTable(store.uri(org, FACTS_TABLE))) if f.span == "2026-02"
    ]
    rows = rollups.to_pyarrow_dataset(file_pruning_predicate=[("source", "in", february)])
    assert rows.to_table(columns=["part"]).column("part").to_pylist() == ["members"]
    for start, end in (("2026-01-01", "2026-03-31"), ("2025-11-21", "2026-11-20")):
        validated = valid(request(org, "users", start, end, "UTC"))
        assert rolled_up_export(store, workspace, validated) == facts_only_export(
            workspace, validated
        )


def test_agents_from_roll_ups_keep_deleted_senders_and_null_tokens_exact(
    tmp_path: Path, stream: Stream
) -> None:
    """The agents figures that are not sums, from the roll-ups as from the facts: senders
    deleted by the window's end (active_users), minima and maxima over months where some
    or all tokens are null, distinct users and conversations across months."""
    org = "ws-0001"
    full = stream.orgs[org]
    facts = full.facts
    agent_messages = pc.and_(
        pc.equal(facts.column("kind"), "message"), pc.is_valid(facts.column("assistant_id"))
    )
    agents = facts.filter(agent_messages)
    counts = pc.value_counts(agents.column("assistant_id")).to_pylist()
    busiest = max(counts, key=lambda entry: (entry["counts"], entry["values"]))["values"]
    # The busiest agent's prompt tokens are never known; everyone's completion tokens
    # are unknown in even months (min and max combine months with and without values).
    months = pc.cast(pc.strftime(facts.column("day"), "%m"), pa.int64())
    no_prompt = pc.equal(facts.column("assistant_id"), busiest)
    no_completion = pc.equal(pc.bit_wise_and(months, 1), 0)
    prompt = pc.if_else(no_prompt, pa.scalar(None, pa.int64()), facts.column("prompt_tokens"))
    completion = pc.if_else(
        no_completion, pa.scalar(None, pa.int64()), facts.column("completion_tokens")
    )
    facts = facts.set_column(facts.schema.get_field_index("prompt_tokens"), "prompt_tokens", prompt)
    facts = facts.set_column(
        facts.schema.get_field_index("completion_tokens"), "completion_tokens", completion
    )
    # Three of the agents' senders are deleted a day before NOW.
    senders = sorted(set(agents.column("user_id").to_pylist()) - {None})[:3]
    deleted_ms = int(NOW.timestamp() * 1000) - 86_400_000
    deletions = dimensions_table(
        org,
        [("users", user, deleted_ms, f"zz-delete-{user}", {"deleted": True}) for user in senders],
    )
    workspace = Workspace(facts.cast(FACTS), pa.concat_tables([full.dimensions, deletions]))
    store = seeded(tmp_path, org, workspace)
    roll_up_all(store, org, (AGENT_PARTS,))
    for group_by in (None, "model"):
        for start, end, zone in WINDOWS:
            validated = valid(request(org, "assistants", start, end, zone, group_by))
            assert rolled_up_export(store, workspace, validated) == facts_only_export(
                workspace, validated
            ), (group_by, start, end, zone)
    # The case is exercised: the 12-month file has senders deleted and unknown minima.
    twelve = valid(request(org, "assistants", "2025-11-21", "2026-11-20", "UTC"))
    assert read_of(store, twelve).rolled_up_files >= 10
    rows = list(csv.DictReader(io.StringIO(facts_only_export(workspace, twelve).decode())))
    assert any(int(row["active_users"]) < int(row["unique_users"]) for row in rows)
    [mine] = [row for row in rows if row["assistant_id"] == busiest]
    assert (mine["min_prompt_tokens"], mine["max_prompt_tokens"]) == ("", "")
    assert int(mine["messages"]) > 0
    assert mine["min_completion_tokens"] != ""
