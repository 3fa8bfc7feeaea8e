"""Scenario 1: ingest SIGKILLed while a stream with duplicates, late and out-of-order events
comes in, restarted each time; the exports equal the oracle's.

Two kills land at the dangerous moments on purpose, through the store proxy, and the test
proves from the store and the broker that they did:

* ``head durable, offset not committed``: the store's answer to a day head's PUT is held
  back (the head is durable), and ingest is killed before it could commit; the store then
  holds events whose offsets were not committed — events the restarted worker reads again
  and must drop as duplicates;
* ``segment written, head not``: a day head's PUT that follows the PUT of a new fact
  segment of that day is frozen before the store sees it, and ingest is killed; the store
  then holds a segment its day head does not name.

The other kills come at random moments once the restarted worker is committing again.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from shared import codec
from shared.adapters.s3 import ObjectStore
from shared.domain.facts import EVENT_ID
from shared.settings import Settings
from shared.storage.days import parse_head
from tests.integration.conftest import FreshSettingsFactory
from tests.integration.kafka_tools import committed, read_topic
from tests.integration.reliability.conftest import FiguresRecorder
from tests.integration.reliability.exports import (
    dataset_window,
    exporter_in_process,
    requests_for,
    verify_exports,
)
from tests.integration.reliability.processes import ServiceFleet, ServiceProcess
from tests.integration.reliability.proxy import FaultProxy, Trigger
from tests.integration.reliability.seeds import scenario_random
from tests.integration.reliability.streams import (
    Dataset,
    Progress,
    end_offsets,
    produce_paced,
    records_between,
    simulated,
)
from tests.integration.reliability.waiting import wait_committed_while_alive
from tests.integration.test_ingest import assert_aggregates_match


@dataclass(frozen=True)
class Size:
    events: int
    random_kills: int  # after the two kills at the dangerous moments
    orgs: int
    interval_s: tuple[float, float]  # a random kill comes this long (uniform) after ...
    # ... the restarted worker committed again. Days: fewer days, more facts per day (a
    # day's facts spill into a segment past 64 KiB, which the segment kill needs).
    days: float = 364.0
    # Settings of the ingest under test: the short version flushes and commits often, so
    # that its kills land around commits; the full one runs with the service defaults.
    overrides: tuple[tuple[str, object], ...] = ()


SHORT = Size(
    events=20_000,
    random_kills=1,
    orgs=3,
    interval_s=(0.0, 2.0),
    days=15.0,
    overrides=(
        ("ingest_flush_interval_s", 0.5),
        ("ingest_backlog_flush_interval_s", 2.0),
        ("kafka_session_timeout_ms", 3_000),
        ("kafka_heartbeat_interval_ms", 500),
    ),
)
FULL = Size(events=500_000, random_kills=12, orgs=5, interval_s=(3.0, 15.0))


def head_put(settings: Settings) -> re.Pattern[bytes]:
    """A day head's PUT; group 1 is its day's prefix (``/bucket/v1/orgs/…/days/…/``)."""
    bucket = re.escape(settings.aggregates_bucket.encode())
    return re.compile(rb"PUT (/" + bucket + rb"/v1/orgs/[^/ ]+/days/[^/ ]+/)head\.json ")


async def fired(trigger: Trigger, process: ServiceProcess, what: str, timeout_s: float) -> None:
    """Until the proxy froze ``what``, failing at once if the service exits."""
    deadline = time.monotonic() + timeout_s
    while not await trigger.wait(0.5):
        process.check_alive()
        assert time.monotonic() < deadline, f"ingest never reached {what}"


async def committing_again(
    settings: Settings, since: dict[int, int], progress: Progress, process: ServiceProcess
) -> dict[int, int]:
    """Until the group committed past ``since`` (the restarted worker owns the partitions
    and makes progress), or everything produced is committed (nothing left to crash on)."""
    partitions = range(settings.events_partitions)
    deadline = time.monotonic() + 300
    while True:
        process.check_alive()
        now = await committed(settings, settings.ingest_group, settings.topic_events, partitions)
        if any(now[p] > since.get(p, 0) for p in partitions):
            return now
        if progress.done.is_set() and all(now[p] >= e for p, e in progress.ends.items()):
            return now
        assert time.monotonic() < deadline, f"ingest did not commit again: {now}"
        await asyncio.sleep(0.3)


EventKey = tuple[str, str]  # (org_id, event_id): what dedup is keyed by


def event_key_of(value: bytes) -> EventKey | None:
    try:
        event = codec.loads(value)
    except ValueError:
        return None
    if not isinstance(event, dict):
        return None
    return str(event.get("org_id")), str(event.get("event_id"))


def unique_events(dataset: Dataset) -> set[EventKey]:
    """Events that occur once in the stream (not re-sent as a duplicate)."""
    counts: Counter[EventKey] = Counter()
    for record in dataset.records:
        key = event_key_of(record.value)
        if key is not None:
            counts[key] += 1
    return {key for key, count in counts.items() if count == 1}


async def durable_uncommitted(
    settings: Settings, direct: Settings, dataset: Dataset, prefix: str
) -> int:
    """How many events of the day under ``prefix`` are durable in the store while their
    records are after the group's committed offsets: the events a restarted worker reads
    again although they are already applied. Counted only for ids that occur once in the
    stream, so a duplicate re-sent by the producer is never mistaken for a redelivery."""
    partitions = range(settings.events_partitions)
    starts = await committed(settings, settings.ingest_group, settings.topic_events, partitions)
    ends = await end_offsets(settings, settings.topic_events)
    tail = await records_between(settings, settings.topic_events, starts, ends)
    tail_keys = {found for value in tail if (found := event_key_of(value)) is not None}
    key = prefix.split("/", 2)[2] + "head.json"  # without "/bucket/"
    async with ObjectStore(direct, direct.aggregates_bucket) as store:
        head = await store.get(key)
        assert head is not None, f"the held PUT of {key} did not take effect"
        document, inline = parse_head(head.body)
        bodies = [inline]
        for segment in document["segments"]:
            stored = await store.get(segment["key"])
            assert stored is not None
            bodies.append(stored.body)
    org_id = key.split("/")[2]  # v1/orgs/{org}/days/…
    durable = {
        (org_id, str(codec.loads(line)[EVENT_ID]))
        for body in bodies
        for line in body.splitlines()
        if line.strip()
    }
    return len(durable & tail_keys & unique_events(dataset))


async def orphan_segment(direct: Settings, prefix: str, segment_path: str) -> bool:
    """Whether the segment is in the store and its day head does not name it."""
    segment_key = segment_path.split("/", 2)[2].removesuffix(".ids").removesuffix(".ndjson")
    segment_key += ".ndjson"
    async with ObjectStore(direct, direct.aggregates_bucket) as store:
        segment = await store.get(segment_key)
        head = await store.get(prefix.split("/", 2)[2] + "head.json")
    named = [s["key"] for s in parse_head(head.body)[0]["segments"]] if head else []
    return segment is not None and segment_key not in named


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(SHORT, id="short"),
        pytest.param(FULL, id="500k", marks=[pytest.mark.soak, pytest.mark.timeout(5400)]),
    ],
)
async def test_sigkilled_ingest_loses_and_doubles_nothing(
    make_fresh_settings: FreshSettingsFactory,
    store_proxy: FaultProxy,
    tmp_path: Path,
    figures: FiguresRecorder,
    size: Size,
) -> None:
    row = figures.row("1", "short" if size is SHORT else f"{size.events // 1000}k")
    seed, rng = scenario_random(f"1/{size.events}")
    row.details["seed"] = seed
    settings = await make_fresh_settings(**dict(size.overrides), s3_endpoint=store_proxy.endpoint)
    direct = settings.model_copy(update={"s3_endpoint": store_proxy.target_endpoint})
    dataset = simulated(
        seed % 10_000, size.events, orgs=size.orgs, days=size.days, invalid_rate=0.01
    )
    records = dataset.kafka_records
    row.events = len(records)
    row.details |= {
        "duplicates": dataset.count("duplicate"),
        "invalid": dataset.count("invalid"),
    }
    # Spread production over the kills, so that they land while events stream in.
    mean_interval = sum(size.interval_s) / 2 + 3.0  # + the wait for the restart to commit
    progress = Progress(total=len(records))
    kill_points: list[float] = []
    pattern = head_put(settings)
    async with ServiceFleet(tmp_path) as fleet:
        ingest = fleet.start("ingest", settings, log_level="INFO")
        producing = asyncio.create_task(
            produce_paced(
                settings,
                settings.topic_events,
                records,
                duration_s=(size.random_kills + 2) * mean_interval,
                progress=progress,
            )
        )
        try:
            # 1. A day head is durable (the store answered 200), its offsets not committed.
            trigger = store_proxy.arm(pattern, hold="response")
            await fired(trigger, ingest, "a day head's PUT", timeout_s=300)
            assert await trigger.wait_answered(60), "the store never answered the held PUT"
            assert trigger.answer.startswith(b"HTTP/1.1 200"), trigger.answer[:100]
            assert ingest.kill() == -9
            kill_points.append(round(progress.fraction, 3))
            match = pattern.search(trigger.matched)
            assert match is not None
            redelivered = await durable_uncommitted(
                settings, direct, dataset, match.group(1).decode()
            )
            row.details["durable_not_committed_at_kill"] = redelivered
            assert redelivered > 0, "the kill did not fall between a durable write and a commit"
            store_proxy.release()
            ingest = fleet.start("ingest", settings, log_level="INFO")

            # 2. A new fact segment is written, the day head naming it is not.
            spilled: list[str] = []

            def after_a_segment(head: re.Match[bytes]) -> bool:
                prefix = head.group(1).decode()
                for line in reversed(store_proxy.requests):
                    method, path = line.split(" ", 1)
                    if path.startswith(prefix):
                        if method == "PUT" and "/facts-" in path:
                            spilled.append(path)
                            return True
                        return False
                return False

            trigger = store_proxy.arm(pattern, accept=after_a_segment)
            await fired(trigger, ingest, "a day head's PUT after a segment", timeout_s=600)
            assert ingest.kill() == -9
            kill_points.append(round(progress.fraction, 3))
            match = pattern.search(trigger.matched)
            assert match is not None
            assert await orphan_segment(direct, match.group(1).decode(), spilled[-1]), (
                "the kill did not fall between a segment's write and its head's"
            )
            row.details["segment_without_head_at_kill"] = spilled[-1].rsplit("/", 1)[1]
            store_proxy.release()
            ingest = fleet.start("ingest", settings, log_level="INFO")

            # Then at random moments, each once the restarted worker commits again.
            partitions = range(settings.events_partitions)
            since = await committed(
                settings, settings.ingest_group, settings.topic_events, partitions
            )
            for _ in range(size.random_kills):
                since = await committing_again(settings, since, progress, ingest)
                await asyncio.sleep(rng.uniform(*size.interval_s))
                ingest.check_alive()
                assert ingest.kill() == -9
                kill_points.append(round(progress.fraction, 3))
                await asyncio.sleep(rng.uniform(0.0, 1.0))  # restarted after up to 1 s
                ingest = fleet.start("ingest", settings, log_level="INFO")
            row.faults = 2 + size.random_kills
            ends = await producing
        finally:
            producing.cancel()
            await asyncio.gather(producing, return_exceptions=True)
        row.fault_kinds = "SIGKILL: head durable, offset not; segment, no head; random"
        row.details["kills_at_fraction_produced"] = kill_points
        row.details["produced_s"] = round(time.monotonic() - row.started, 1)
        await wait_committed_while_alive(settings, ends, ingest, timeout_s=1800)
        row.details["caught_up_s"] = round(time.monotonic() - row.started, 1)
        # A SIGTERM that lands while the restarted process still imports ends it by the
        # default action (-15): not the drain this checks.
        await ingest.wait_for_log("ingest consuming")
        assert await ingest.terminate() == 0, ingest.log_tail()
        row.details["ingest_peak_rss_mib"] = max(p.peak_rss_kib for p in fleet.processes) // 1024

    if size is not SHORT:  # an aggregate-level cross-check, beside the exports'
        await assert_aggregates_match(direct, dataset.records)
    row.details["aggregates_checked_s"] = round(time.monotonic() - row.started, 1)
    log = dataset.reference_log()
    async with exporter_in_process(direct) as client:
        tally = await verify_exports(
            client, log, requests_for(dataset.orgs, dataset_window(dataset))
        )
    row.exports, row.lost, row.doubled = tally.exports, tally.lost, tally.doubled
    row.details["rows_compared"] = tally.rows
    row.details["exports_checked_s"] = round(time.monotonic() - row.started, 1)
    tally.assert_exact()
    assert tally.exports == len(dataset.orgs) * 5
    assert tally.rows > 0

    invalid = {record.value[:1000] for record in dataset.records if record.kind == "invalid"}
    letters = await read_topic(settings, settings.topic_events_dlq, expected=len(invalid))
    dead = [letter.value[:1000] for letter in letters]
    assert set(dead) == invalid  # each bad event dead-lettered (again, if redelivered)
    row.details["dead_letters"] = len(dead)
