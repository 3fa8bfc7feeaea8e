"""``ingestedThrough`` (``shared.adapters.ingest_progress``): the instant before which every
appended event is counted, from the ingest group's committed offsets and the topic's log
ends and append times; and the manifest beside each export file."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.adapters.ingest_progress import ingested_through
from shared.domain.export.manifest import manifest_path

NOW_MS = 1_800_000_000_000


def test_a_caught_up_topic_is_ingested_through_now() -> None:
    ends = {0: 10, 1: 0, 2: 7}
    assert ingested_through(NOW_MS, ends, {0: 10, 1: None, 2: 7}, {}) == NOW_MS


def test_a_lagging_partition_bounds_it_by_its_first_unconsumed_record() -> None:
    ends = {0: 10, 1: 20, 2: 7}
    committed = {0: 10, 1: 12, 2: 3}
    appended = {1: NOW_MS - 5_000, 2: NOW_MS - 60_000}
    assert ingested_through(NOW_MS, ends, committed, appended) == NOW_MS - 60_000
    # A group that never committed on a partition has ingested nothing of it.
    assert ingested_through(NOW_MS, {0: 4}, {0: None}, {0: NOW_MS - 1}) == NOW_MS - 1


def test_an_unknown_append_time_is_no_answer() -> None:
    with pytest.raises(LookupError):
        ingested_through(NOW_MS, {0: 10}, {0: 3}, {0: None})


def test_the_manifest_sits_beside_its_file() -> None:
    path = "users-usage/ws-1/users-usage-2026-01-01-2026-01-31-0b6f7c1e"
    for extension in ("csv", "csv.gz", "parquet", "ndjson"):
        assert manifest_path(f"{path}.{extension}", extension) == f"{path}.manifest.json"
    with pytest.raises(ValueError, match="does not end with"):
        manifest_path(f"{path}.csv", "parquet")


def test_now_is_utc_milliseconds() -> None:
    moment = datetime.fromtimestamp(NOW_MS / 1000, UTC)
    assert moment.isoformat(timespec="milliseconds") == "2027-01-15T08:00:00.000+00:00"
