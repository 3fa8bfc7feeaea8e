"""Scenario 5: the exporter SIGKILLed in the middle of an export; after a restart the request
completes, with exactly one file, equal to the oracle's.

The exporter reaches the store through the fault proxy, armed to freeze the connection
that carries one chosen step of the export, so the kill lands exactly there:

* ``reading``: the first read of the workspace's tables (request record written);
* ``uploading``: the PUT of the CSV file (file not yet visible);
* ``settling``: the request record's update with the outcome (file whole, not recorded);
* ``answered``: the completion was published, its offset not committed. Made certain: a
  request of the same workspace (so on the same partition) sent just before is frozen at
  the upload of its file, and a partition's offset is only committed up to its lowest unanswered
  request; the test reads the committed offset after the kill to show it. The restarted
  exporter then answers the request again, from its record: the same file.

The full version adds rounds of concurrent requests killed at random moments.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shared import codec
from shared.adapters.export_client import ExportClient, export_request
from shared.adapters.s3 import S3ObjectStore
from shared.domain.export.paths import request_record_key
from shared.settings import Settings
from tests.integration.conftest import FreshSettingsFactory
from tests.integration.kafka_tools import committed
from tests.integration.reliability.conftest import FiguresRecorder
from tests.integration.reliability.exports import (
    ExportTally,
    compare,
    csv_keys,
    dataset_window,
    expected_of,
)
from tests.integration.reliability.processes import ServiceFleet, ServiceProcess
from tests.integration.reliability.proxy import FaultProxy
from tests.integration.reliability.seeds import scenario_random
from tests.integration.reliability.streams import Dataset, end_offsets, produce_paced, simulated
from tests.integration.test_ingest import ingest_until_committed
from tests.reference import EventLog

KILL_POINTS = ("reading", "uploading", "settling", "answered")


@dataclass(frozen=True)
class Size:
    kill_points: tuple[str, ...]
    random_rounds: int
    requests_per_round: int
    # A SIGKILLed member leaves the group only after its session times out: the short
    # version shortens the wait (the exporter's loop is idle enough to heartbeat on time).
    session_timeout_ms: int = 6_000


SHORT = Size(
    kill_points=KILL_POINTS,
    random_rounds=0,
    requests_per_round=0,
    session_timeout_ms=2_000,
)
FULL = Size(kill_points=KILL_POINTS, random_rounds=10, requests_per_round=10)


def trigger_pattern(point: str, settings: Settings, org: str) -> re.Pattern[bytes]:
    aggregates = re.escape(settings.aggregates_bucket.encode())
    exports = re.escape(settings.exports_bucket.encode())
    if point == "reading":
        # A read of the request's workspace's tables (a GET under v3/workspaces/{org}/, or
        # a LIST of it): not the format check at start, which lists the prefixes v1/orgs/,
        # v2/workspaces/ and v3/workspaces/, nor the exporter's warm-up opening the other
        # workspaces' tables (armed only once the warm-up is over: see `warmed`).
        workspace = re.escape(org.encode())
        return re.compile(
            rb"GET /" + aggregates + rb"[/?]\S*v3(/|%2F)workspaces(/|%2F)" + workspace + rb"(/|%2F)"
        )
    if point == "uploading":
        return re.compile(rb"PUT /" + exports + rb"/[a-z-]+-usage/")
    if point == "settling":
        return re.compile(rb'"outcome":\{"status":200')
    raise ValueError(point)


async def files_of(settings: Settings, request_id: str) -> list[str]:
    return [key for key in await csv_keys(settings) if key.endswith(f"-{request_id[:8]}.csv")]


async def recorded_outcome(settings: Settings, org_id: str, request_id: str) -> dict[str, Any]:
    async with S3ObjectStore(settings, settings.exports_bucket) as store:
        stored = await store.get(request_record_key(org_id, request_id))
    assert stored is not None
    outcome: dict[str, Any] = codec.loads(stored.body)["outcome"]
    return outcome


async def restart(
    fleet: ServiceFleet, exporter: ServiceProcess, settings: Settings
) -> ServiceProcess:
    assert exporter.kill() == -9, exporter.log_tail()
    return fleet.start("exporter", settings, log_level="INFO")  # INFO: "exporter consuming"


async def warmed(exporter: ServiceProcess) -> None:
    """Until the exporter's warm-up has opened the workspaces' tables (or given up): its reads
    of the request's workspace would otherwise pull a 'reading' trigger meant for the export."""
    await exporter.wait_for_log("warm-up")


async def killed_after_answering(
    fleet: ServiceFleet,
    exporter: ServiceProcess,
    client: ExportClient,
    proxy: FaultProxy,
    settings: Settings,
    tally: ExportTally,
    dataset: Dataset,
    log: EventLog,
    org: str,
    answered: list[tuple[dict[str, Any], str]],
) -> ServiceProcess:
    """Kill the exporter once a request is answered and its offset provably not committed;
    the restarted exporter must answer it again with the same file, and the blocker once."""
    window = dataset_window(dataset)
    blocker = export_request(org, "users", window.from_date, window.to_date)
    message = export_request(org, "models", window.from_date, window.to_date)
    topic = settings.topic_export_requests
    before = await end_offsets(settings, topic)
    # The blocker is frozen at its upload: past its reads, so it holds none of the
    # workspace's tables (a read frozen under a table's lock held the other export until
    # the store client's 30 s timeout retried it, and both finished together), and a
    # frozen upload is not retried before the kill below.
    exports = re.escape(settings.exports_bucket.encode())
    own_file = rb"PUT /" + exports + rb"/users-usage/" + re.escape(org.encode()) + rb"/"
    trigger = proxy.arm(re.compile(own_file))
    await client.send(blocker)
    assert await trigger.wait(120), "the exporter never uploaded the blocking request's file"
    await client.send(message)  # same key (workspace): same partition, next offset
    first = await client.wait(message["request_id"], within_s=120)
    assert first.success, first.error
    assert exporter.kill() == -9, exporter.log_tail()
    ends = await end_offsets(settings, topic)
    [partition] = [p for p, end in ends.items() if end - before.get(p, 0) == 2]
    done = await committed(settings, settings.exporter_group, topic, [partition])
    # Published, and not committed: a restart reads it again.
    assert done[partition] <= ends[partition] - 2, (done, ends)
    exporter = fleet.start("exporter", settings, log_level="INFO")
    proxy.release()
    again = await client.wait(message["request_id"], within_s=180)
    assert again.data is not None, again.error
    assert first.data is not None
    assert again.data.filePath == first.data.filePath  # answered from the record
    now = dataset.generated_at
    await compare(tally, message, first, expected_of(log, message, now))
    completion = await client.wait(blocker["request_id"], within_s=180)
    await compare(tally, blocker, completion, expected_of(log, blocker, now))
    answered += [(message, "answered"), (blocker, "answered: blocker")]
    return exporter


async def ingested(settings: Settings) -> Dataset:
    dataset = simulated(55, 5000, days=30, orgs=3)
    ends = await produce_paced(settings, settings.topic_events, dataset.kafka_records)
    await ingest_until_committed(settings, ends)
    return dataset


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(SHORT, id="short"),
        pytest.param(FULL, id="full", marks=[pytest.mark.soak, pytest.mark.timeout(3600)]),
    ],
)
async def test_killed_exporter_completes_with_exactly_one_file(
    make_fresh_settings: FreshSettingsFactory,
    store_proxy: FaultProxy,
    tmp_path: Path,
    figures: FiguresRecorder,
    size: Size,
) -> None:
    row = figures.row("5", "short" if size is SHORT else "full")
    base = await make_fresh_settings()
    dataset = await ingested(base)
    row.events = len(dataset.records)
    log = dataset.reference_log()
    window = dataset_window(dataset)
    settings = base.model_copy(
        update={
            "s3_endpoint": store_proxy.endpoint,
            "kafka_session_timeout_ms": size.session_timeout_ms,
            "kafka_heartbeat_interval_ms": min(1_000, size.session_timeout_ms // 4),
        }
    )
    tally = ExportTally()
    seed, rng = scenario_random(f"5/{size.random_rounds}")
    row.details["seed"] = seed
    answered: list[tuple[dict[str, Any], str]] = []
    async with ServiceFleet(tmp_path) as fleet, ExportClient(settings) as client:
        exporter = fleet.start("exporter", settings, log_level="INFO")
        for index, point in enumerate(size.kill_points):
            org = dataset.orgs[index % len(dataset.orgs)]
            if point == "answered":
                exporter = await killed_after_answering(
                    fleet,
                    exporter,
                    client,
                    store_proxy,
                    settings,
                    tally,
                    dataset,
                    log,
                    org,
                    answered,
                )
                row.faults += 1
                continue
            message = export_request(org, "users", window.from_date, window.to_date)
            await warmed(exporter)
            trigger = store_proxy.arm(trigger_pattern(point, settings, org))
            await client.send(message)
            assert await trigger.wait(120), f"the exporter never reached {point}"
            exporter = await restart(fleet, exporter, settings)
            row.faults += 1
            store_proxy.release()
            completion = await client.wait(message["request_id"], within_s=180)
            await compare(
                tally, message, completion, expected_of(log, message, dataset.generated_at)
            )
            answered.append((message, point))

        for _ in range(size.random_rounds):
            orgs_types = [
                (
                    rng.choice(dataset.orgs),
                    rng.choice(("users", "assistants", "api_keys", "models")),
                )
                for _ in range(size.requests_per_round)
            ]
            messages = [
                export_request(org, kind, window.from_date, window.to_date)
                for org, kind in orgs_types
            ]
            waiting = [asyncio.create_task(client.request(m, within_s=240)) for m in messages]
            await asyncio.sleep(rng.uniform(0.0, 3.0))
            exporter = await restart(fleet, exporter, settings)
            row.faults += 1
            for message, completion in zip(messages, await asyncio.gather(*waiting), strict=True):
                await compare(
                    tally, message, completion, expected_of(log, message, dataset.generated_at)
                )
                answered.append((message, "random"))
        # A SIGTERM that lands while the restarted process still imports ends it by the
        # default action (-15), which is harmless but not the drain this checks.
        await exporter.wait_for_log("exporter consuming")
        assert await exporter.terminate() == 0, exporter.log_tail()
    row.fault_kinds = (
        "SIGKILL at "
        + ", ".join(size.kill_points)
        + (f", {size.random_rounds} random" if size.random_rounds else "")
    )
    row.exports, row.lost, row.doubled = tally.exports, tally.lost, tally.doubled
    tally.assert_exact()
    assert tally.statuses.keys() == {200}

    direct = base
    duplicated = 0
    for message, point in answered:
        files = await files_of(direct, message["request_id"])
        duplicated += max(0, len(files) - 1)
        assert len(files) == 1, (point, files)
        outcome = await recorded_outcome(direct, message["org_id"], message["request_id"])
        assert outcome["status"] == 200
        assert outcome["file"]["filePath"] == files[0]
    row.details["extra_files"] = duplicated
    row.details["requests"] = len(answered)
    # No file without a request that owns it: every CSV is one of the answered ones.
    assert len(await csv_keys(direct)) == len(answered)
