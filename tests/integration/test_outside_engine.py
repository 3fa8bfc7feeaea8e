"""Another engine reads the stored state following only docs/storage.md: Polars'
``scan_delta`` over the facts table reproduces the messages and cost per user of a window,
computed here from the events that were stored — some in a month file the janitor merged,
some in day files appended after it — and a Parquet file left in the table's folder by a
write that never committed is not counted.

Nothing of ``shared.columnar`` is imported here: the reader knows the bucket, the path
pattern, the storage options and the columns from the page alone."""

from __future__ import annotations

import io
from collections import Counter
from datetime import UTC, datetime, time

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from services.compactor.janitor import Janitor
from shared.adapters.s3 import S3ObjectStore
from shared.columnar.tables import TableStore, WorkspaceTables
from shared.domain.facts import MESSAGE
from shared.settings import Settings
from tests.clock import TODAY
from tests.integration.columnar_seed import (
    DAY_MS,
    activity,
    day_start_ms,
    rows,
    seed_days,
    store_workspace,
    versions,
)

ORG = "ws-outside"


def documented_options(settings: Settings) -> dict[str, str]:
    """The storage options of docs/storage.md, 'Reading it with another engine'."""
    assert settings.s3_access_key is not None
    assert settings.s3_secret_key is not None
    return {
        "AWS_ENDPOINT_URL": settings.s3_endpoint,
        "AWS_ACCESS_KEY_ID": settings.s3_access_key.get_secret_value(),
        "AWS_SECRET_ACCESS_KEY": settings.s3_secret_key.get_secret_value(),
        "AWS_REGION": settings.s3_region,
        "AWS_ALLOW_HTTP": "true",
    }


async def test_polars_reproduces_messages_and_cost_per_user_from_the_docs_alone(
    fresh_settings: Settings,
) -> None:
    days = seed_days(6)
    merged = activity(21, "ev", 600, days)
    await store_workspace(fresh_settings, ORG, merged, versions("ev", 7, days))
    # The janitor merges the closed months; late events land in day files after it.
    async with S3ObjectStore(fresh_settings, fresh_settings.aggregates_bucket) as objects:
        janitor = Janitor(fresh_settings, objects, TableStore.of(fresh_settings))
        now = datetime.combine(TODAY, time(12), UTC)
        assert (await janitor.tidy([ORG], now)).merged_months >= 1
    late = activity(22, "late", 150, days)
    tables = await WorkspaceTables.open(TableStore.of(fresh_settings), ORG)
    await tables.append(*rows(ORG, late, []), {("usage.events", 0): len(merged) + len(late)})
    events = merged + late
    # A flush that died before its commit left a valid Parquet file in a day's folder.
    prefix = f"v3/workspaces/{ORG}/facts"
    orphan = pa.table({"kind": ["message"] * 3, "event_id": ["x1", "x2", "x3"],
                       "occurred_ms": [day_start_ms(days[2]) + 1] * 3,
                       "user_id": ["u1"] * 3, "cost_nano": [10**15] * 3})  # fmt: skip
    body = io.BytesIO()
    pq.write_table(orphan, body)
    async with S3ObjectStore(fresh_settings, fresh_settings.aggregates_bucket) as store:
        await store.put(
            f"{prefix}/span={days[2].isoformat()}/part-00009-dead.parquet", body.getvalue()
        )

    # The window: noon of the second day to noon of the fifth, UTC.
    start_ms = day_start_ms(days[1]) + DAY_MS // 2
    end_ms = day_start_ms(days[4]) + DAY_MS // 2
    messages: Counter[str] = Counter()
    cost: Counter[str] = Counter()
    for fact in events:
        if fact[0] == MESSAGE and start_ms <= fact[2] < end_ms:
            messages[fact[3]] += 1
            cost[fact[3]] += fact[18]
    assert len(messages) > 2, "too few users in the window to compare"
    assert sum(messages.values()) < sum(1 for fact in events if fact[0] == MESSAGE)

    uri = f"s3://{fresh_settings.aggregates_bucket}/{prefix}"
    found = (
        pl.scan_delta(uri, storage_options=documented_options(fresh_settings))
        .filter(
            pl.col("day").is_between(days[1], days[4]),
            pl.col("kind") == "message",
            pl.col("occurred_ms") >= start_ms,
            pl.col("occurred_ms") < end_ms,
        )
        .group_by("user_id")
        .agg(pl.len().alias("messages"), pl.col("cost_nano").sum().alias("cost_nano"))
        .collect()
    )

    got = {row["user_id"]: (row["messages"], row["cost_nano"]) for row in found.to_dicts()}
    assert got == {user: (messages[user], cost[user]) for user in messages}
    # And the whole table: every stored event once, the orphan nowhere.
    everything = pl.read_delta(uri, storage_options=documented_options(fresh_settings))
    assert sorted(everything["event_id"].to_list()) == sorted(fact[1] for fact in events)
    # `day` is the UTC day of `occurred_ms`, as the page says.
    utc_days = everything.select(pl.from_epoch("occurred_ms", time_unit="ms").dt.date())
    assert everything["day"].to_list() == utc_days.to_series().to_list()
