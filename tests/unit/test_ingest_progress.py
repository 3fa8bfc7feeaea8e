"""``ingestedThrough`` (``shared.adapters.ingest_progress``): the instant before which every
appended event is counted, from the ingest group's committed offsets and the topic's log
ends and append times; and the manifest beside each export file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import TopicPartition

from shared.adapters import ingest_progress
from shared.adapters.ingest_progress import IngestProgress, ingested_through
from shared.domain.export.manifest import manifest_path
from shared.settings import Settings

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


class _Topic:
    """A topic's partitions with their log ends, committed offsets and record times, and
    fakes of the two consumers IngestProgress reads them through."""

    def __init__(self) -> None:
        self.ends: dict[int, int] = {0: 10}
        self.committed: dict[int, int | None] = {0: 10}
        self.appended: dict[tuple[int, int], int] = {}

    def consumer(self, settings: Settings, *, group_id: str | None, **_: Any) -> Any:
        del settings
        topic = self

        class Reader:
            def __init__(self) -> None:
                self.assigned: list[TopicPartition] = []

            def partitions_for_topic(self, name: str) -> set[int]:
                return set(topic.ends)

            async def topics(self) -> set[str]:
                return {"usage.events"}

            def assign(self, partitions: list[TopicPartition]) -> None:
                self.assigned = partitions

        class Offsets:
            async def committed(self, tp: TopicPartition) -> int | None:
                return topic.committed.get(tp.partition)

        return Reader() if group_id is None else Offsets()


async def test_a_partition_added_to_the_topic_later_is_looked_at(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic = _Topic()

    async def ends(reader: Any, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        assert partitions == reader.assigned  # only assigned partitions can be read
        return {tp: topic.ends[tp.partition] for tp in partitions}

    async def timestamp_at(reader: Any, tp: TopicPartition, offset: int) -> int | None:
        return topic.appended.get((tp.partition, offset))

    monkeypatch.setattr(ingest_progress, "make_consumer", topic.consumer)
    monkeypatch.setattr(ingest_progress, "end_offsets", ends)
    monkeypatch.setattr(ingest_progress, "timestamp_at", timestamp_at)
    now = datetime.fromtimestamp(NOW_MS / 1000, UTC)
    progress = IngestProgress(Settings(), clock=lambda: now)
    assert await progress.through() == now  # caught up
    topic.ends[1], topic.committed[1] = 5, None  # a partition added, ingest behind on it
    topic.appended[1, 0] = NOW_MS - 90_000
    assert await progress.through() == now - timedelta(seconds=90)
