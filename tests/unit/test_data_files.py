"""The Parquet files ingest writes itself: laid out, and described in the Delta log, as
delta-rs's ``write_deltalake`` does it, so every reader sees the same table."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow.fs as pafs
from deltalake import DeltaTable, write_deltalake

from shared.columnar.data_files import file_stats, filesystem, write_files
from shared.columnar.schema import STORED_FACTS, facts_table, with_spans
from shared.domain.facts import API_REQUEST, MESSAGE, PAYG


def ms(day: date, hour: int) -> int:
    return int(datetime(day.year, day.month, day.day, hour, tzinfo=UTC).timestamp() * 1000)


D1, D2 = date(2026, 3, 1), date(2026, 3, 2)
ROWS = with_spans(
    facts_table(
        "ws-1",
        [
            (
                MESSAGE,
                "m1",
                ms(D1, 9),
                "u1",
                "a1",
                None,
                "c1",
                "gpt",
                "openai",
                False,
                "",
                "WEB",
                ["x", "y"],
                1,
                10,
                5,
                2,
                1,
                1_500,
            ),
            (
                API_REQUEST,
                "r1",
                ms(D1, 7),
                "k1",
                "gpt",
                "openai",
                True,
                "eu",
                "API",
                2,
                3,
                4,
                0,
                0,
                7,
            ),
            (PAYG, "p1", ms(D2, 23), "u2", 9_000_000_000),
        ],
    )
)  # fmt: skip


def stats_by_span(table: Path) -> dict[str, dict[str, object]]:
    """Each add action's statistics in the table's log, by span."""
    found: dict[str, dict[str, object]] = {}
    for entry in sorted((table / "_delta_log").glob("*.json")):
        for line in entry.read_text().splitlines():
            add = json.loads(line).get("add")
            if add is not None:
                found[add["partitionValues"]["span"]] = json.loads(add["stats"])
    return found


def test_files_and_statistics_are_the_ones_delta_rs_writes(tmp_path: Path) -> None:
    theirs = DeltaTable.create(str(tmp_path / "theirs"), STORED_FACTS, partition_by=["span"])
    write_deltalake(theirs, ROWS, mode="append")
    ours = DeltaTable.create(str(tmp_path / "ours"), STORED_FACTS, partition_by=["span"])
    fs, path = filesystem(str(tmp_path / "ours"), {})
    actions = write_files(ROWS, ["span"], fs=fs, table_path=path, modified_ms=1_000)
    ours.create_write_transaction(
        list(actions), mode="append", schema=ours.schema(), partition_by=["span"]
    )
    ours.update_incremental()
    theirs.update_incremental()

    assert sorted(action.path.split("/")[0] for action in actions) == [
        "span=2026-03-01",
        "span=2026-03-02",
    ]
    assert all(action.path.endswith("-c000.snappy.parquet") for action in actions)
    assert stats_by_span(tmp_path / "ours") == stats_by_span(tmp_path / "theirs")
    assert (
        ours.to_pyarrow_table()
        .sort_by("event_id")
        .equals(theirs.to_pyarrow_table().sort_by("event_id"))
    )


def test_an_unpartitioned_table_gets_one_file_and_no_rows_no_file(tmp_path: Path) -> None:
    fs, path = filesystem(str(tmp_path), {})
    assert write_files(ROWS.slice(0, 0), [], fs=fs, table_path=path, modified_ms=0) == []
    (action,) = write_files(ROWS, [], fs=fs, table_path=path, modified_ms=5)
    assert action.partition_values == {}
    assert "/" not in action.path
    assert action.size == (tmp_path / action.path).stat().st_size
    assert json.loads(action.stats)["numRecords"] == 3


def test_statistics_skip_lists_and_columns_without_values() -> None:
    stats = json.loads(file_stats(ROWS.slice(2, 1)))  # the payg row: most columns null
    assert stats["numRecords"] == 1
    assert "actions" not in stats["nullCount"]
    assert stats["nullCount"]["model"] == 1
    assert "model" not in stats["minValues"]
    assert stats["minValues"]["day"] == "2026-03-02"
    assert stats["maxValues"]["amount_nano"] == 9_000_000_000


def test_the_s3_filesystem_takes_delta_rs_options() -> None:
    options = {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "id",
        "AWS_SECRET_ACCESS_KEY": "secret",
    }
    fs, path = filesystem("s3://bucket/v3/workspaces/ws-1/facts", options)
    assert isinstance(fs, pafs.S3FileSystem)
    assert path == "bucket/v3/workspaces/ws-1/facts"
    assert fs.region == "eu-west-1"
    assert filesystem("s3://bucket/x", options)[0] is fs  # one client per endpoint and keys
