"""The export benchmark's OLAP peer (``bench/olap.py``, ``bench/olap_users.sql``): raw
events landed as Parquet and queried by DuckDB must give every user the same totals as
the users export (the oracle, ``tests.reference``, computes it from the same raw
events), and the first copy of a re-sent event must win."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from bench.olap import Landing, connect, export_once, ratio, raw_row, users_rows
from shared import codec
from shared.domain.window import months_before, resolve_window
from shared.simulation import SimConfig, SimRecord, simulate
from tests.reference import build_log, reference_export
from tests.reference.cells import guard

NOW = datetime(2026, 11, 20, 12, 7, 31, tzinfo=UTC)

ORG = "ws-0001"
COUNTS = (
    "messages_total", "messages_total_rank", "messages_chat", "messages_chat_rank",
    "messages_assistants", "messages_assistants_rank", "assistants_messaged",
    "messages_projects", "messages_projects_rank", "projects_messaged", "action_messages",
    "action_messaged",
)  # fmt: skip
TOKENS = (
    ("total_input_tokens", "total_input_tokens"),
    ("total_output_tokens", "total_output_tokens"),
    ("cached_prompt_tokens", "cached_prompt_tokens"),
    ("cache_creation_tokens", "cache_creation_tokens"),
    ("no_cache_tokens", "no_cache_tokens"),
)
MAPS = (
    "assistants_to_messages", "projects_to_messages", "model_to_messages_total",
    "action_to_messages",
)  # fmt: skip
MONEY = (("total_cost_usd", "total_cost_usd"), ("payg_consumption", "payg_consumption_in_period"))


@pytest.fixture(scope="module")
def records() -> list[SimRecord]:
    config = SimConfig(
        seed=11, orgs=3, events=9000, invalid_rate=0.02, late_rate=0.05, dup_rate=0.08,
        end=NOW - timedelta(hours=1),
    )  # fmt: skip
    return list(simulate(config))


@pytest.fixture(scope="module")
def landed(records: list[SimRecord], tmp_path_factory: pytest.TempPathFactory) -> Landing:
    directory = tmp_path_factory.mktemp("olap") / "raw"
    landing = Landing(directory, ORG, rows_per_file=1500, row_group=400)
    for record in records:
        landing.take(record)
    landing.close()
    return landing


def _window(first: date, last: date) -> tuple[int, int]:
    window = resolve_window(first.isoformat(), "UTC", last.isoformat(), "UTC", now=NOW)
    return window.start_ms, window.end_ms


def _cents(value: Decimal) -> str:
    """A nano-dollar-exact sum as the users export shows it (6 decimals, half-even)."""
    return f"{value.quantize(Decimal('0.000001'), rounding=ROUND_HALF_EVEN):.6f}"


def _map(value: Any) -> dict[str, int]:
    return dict(value) if value else {}


def ours_by_user(records: list[SimRecord], first: date, last: date) -> dict[str, Any]:
    """The users export's rows by user id, as the oracle computes them."""
    result = reference_export(
        build_log([record.value for record in records], valid_at=NOW),
        org_id=ORG, data_type="users", from_date=first.isoformat(), from_tz="UTC",
        to_date=last.isoformat(), to_tz="UTC", now=NOW,
    )  # fmt: skip
    # The workspace is BYOK and shows user-level data: every column is in the file.
    assert {"name", "total_cost_usd", "action_to_messages"} <= set(result.header)
    rows = [dict(zip(result.header, row, strict=True)) for row in result.rows]
    return {row["user_id"]: row for row in rows}


@pytest.mark.parametrize(
    ("first", "last"),
    [(months_before(NOW.date(), 12), NOW.date()), (date(2026, 6, 3), date(2026, 7, 19))],
    ids=["12 months", "a window inside"],
)
def test_the_peer_gives_every_user_the_users_exports_totals(
    records: list[SimRecord], landed: Landing, first: date, last: date
) -> None:
    start_ms, end_ms = _window(first, last)
    ours = ours_by_user(records, first, last)
    peer_rows = users_rows(connect(landed.directory), ORG, start_ms, end_ms).to_pylist()
    peer = {row["user_id"]: row for row in peer_rows}

    assert len(peer) == len(peer_rows)
    assert set(peer) == set(ours)
    assert sum(int(row["messages_total"]) for row in ours.values()) > 500
    assert [row["user_id"] for row in peer_rows] == sorted(
        ours, key=lambda user: (-int(ours[user]["messages_total"]), user)
    )
    for user, mine in ours.items():
        theirs = peer[user]
        for column in COUNTS:
            assert theirs[column] == int(mine[column]), (user, column)
        for peer_column, our_column in TOKENS:
            assert theirs[peer_column] == int(mine[our_column]), (user, peer_column)
        for column in MAPS:
            assert _map(theirs[column]) == codec.loads(mine[column]), (user, column)
        for peer_column, our_column in MONEY:
            assert _cents(theirs[peer_column]) == mine[our_column], (user, peer_column)
        if theirs["name"] is not None:  # the peer has no profile for a user whose
            # first upsert is after the window (ours then shows the earliest version)
            assert guard(theirs["name"]) == mine["name"], user
    assert sum(row["name"] is not None for row in peer_rows) > len(peer_rows) / 2


def test_the_landing_keeps_resent_duplicates_and_drops_malformed_records(
    records: list[SimRecord], landed: Landing
) -> None:
    mine = [record for record in records if record.org_id == ORG]
    kept = [record for record in mine if record.kind != "invalid"]
    assert landed.rows == len(kept) < len(mine)
    files = sorted(landed.directory.glob("*.parquet"))
    table = pq.read_table(files)
    assert table.num_rows == landed.rows
    assert landed.files == len(files) == -(-landed.rows // 1500) > 2
    assert [pq.ParquetFile(path).metadata.num_rows for path in files[:-1]] == [1500] * (
        len(files) - 1
    )
    assert pq.ParquetFile(files[0]).metadata.num_row_groups == 4  # 400, 400, 400, 300
    assert landed.bytes == sum(path.stat().st_size for path in files)
    ids = table.column("event_id").to_pylist()
    assert len(set(ids)) < len(ids)  # the query's dedup has work to do
    assert table.column("seq").to_pylist() == sorted(table.column("seq").to_pylist())


def _message(event_id: str, prompt: int, at: str = "2026-11-01T10:00:00.5+05:30") -> SimRecord:
    event = {
        "event_id": event_id,
        "type": "message",
        "org_id": ORG,
        "occurred_at": at,
        "user_id": "u-1",
        "model": "m",
        "provider": "p",
        "actions": ["a", "a"],
        "usage": {"prompt_tokens": prompt, "cost_usd": 0.0000001235},
    }
    return SimRecord(ORG.encode(), codec.dumps(event), "valid", None, ORG, "message")


def test_the_first_landed_copy_of_an_event_wins(tmp_path: Path) -> None:
    landing = Landing(tmp_path / "raw", ORG)
    for record in (
        _message("e-1", 10),
        _message("e-1", 99, at="2026-11-02T10:00:00Z"),  # re-stamped, other tokens
        _message("e-2", 5),
    ):
        landing.take(record)
    landing.close()
    start_ms, end_ms = _window(date(2026, 10, 1), date(2026, 11, 19))
    (row,) = users_rows(connect(landing.directory), ORG, start_ms, end_ms).to_pylist()
    assert (row["messages_total"], row["total_input_tokens"]) == (2, 15)
    assert (row["action_messages"], row["action_messaged"]) == (2, 1)
    assert _map(row["action_to_messages"]) == {"a": 2}
    assert row["total_cost_usd"] == Decimal("0.000000248")  # 124 nano each, half to even
    out = tmp_path / "users.csv"
    assert export_once(landing.directory, ORG, start_ms, end_ms, out) == 1
    assert out.read_text(encoding="utf-8").splitlines()[0].startswith("user_id,name,")


def test_a_row_is_the_event_flattened_with_exact_money_and_utc_milliseconds() -> None:
    value = codec.dumps(
        {
            "event_id": "e",
            "type": "payg_consumption",
            "org_id": ORG,
            "occurred_at": "2026-01-01T00:30:00.123456+01:00",
            "user_id": "u",
            "amount": 0.1,
        }
    )
    row = raw_row(value, 7)
    instant = datetime.fromisoformat("2025-12-31T23:30:00.123+00:00")
    assert row["occurred_at"] == int(instant.timestamp() * 1000)
    assert row["amount"] == Decimal("0.1")
    assert row["seq"] == 7


@pytest.mark.parametrize(
    ("ours", "peer", "expected"),
    [(1.0, 2.0, 0.5), (3.0, 1.5, 2.0), (None, 1.0, None), (1.0, None, None), (1.0, 0.0, None)],
)
def test_ratio_is_ours_over_the_peer(
    ours: float | None, peer: float | None, expected: float | None
) -> None:
    assert ratio(ours, peer) == expected
