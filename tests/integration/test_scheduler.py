"""Scheduled exports on the real stack: a scheduler *process* on a clock the test moves
(``tests.integration.scheduler_process``), killed with SIGKILL and restarted as two replicas while
several periods are due; every period is exported exactly once (one request id, one
ledger record, one file, one destination copy per period; every completion of an id
names the same file), the files match the reference, and the copies are in a second
store's bucket, written with that store's own identity (the main identity cannot write
there).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import pytest
from botocore.exceptions import ClientError
from pydantic import SecretStr

from services.exporter.app import run_exporter
from services.ingest.app import run_ingest
from services.scheduler.store import ScheduleStore
from shared.adapters.s3 import S3ObjectStore
from shared.clock import fixed_clock
from shared.contracts.completions import ExportCompletion
from shared.domain.schedules import Schedule, due_periods, period_request, period_request_id
from shared.domain.window import to_ms
from shared.embedded import EmbeddedStack
from shared.embedded.binaries import locate_weed
from shared.embedded.ports import free_ports
from shared.embedded.s3client import open_s3_client
from shared.embedded.store import SeaweedStore, WeedPorts
from shared.settings import Settings, settings_env
from shared.simulation import SimConfig, simulate
from tests.clock import NOW
from tests.integration.conftest import FreshSettingsFactory, InfraStack
from tests.integration.kafka_tools import produce, read_topic, wait_until_committed
from tests.reference import build_log, reference_csv_bytes, reference_request

ORG = "ws-0001"
ZONE = "Asia/Kolkata"
GRACE_S = 7200.0
DESTINATION = "archive"
DEST_PREFIX = "scheduled"
ROOT = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def running_services(settings: Settings) -> AsyncIterator[None]:
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(run_ingest(settings, stop=stop)),
        asyncio.create_task(run_exporter(settings, stop=stop)),
    ]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


@asynccontextmanager
async def second_store(base: Settings, root: Path) -> AsyncIterator[Settings]:
    """Another SeaweedFS on loopback with its own identity and bucket: settings reaching it."""
    key, secret = f"dest{uuid.uuid4().hex[:12]}", uuid.uuid4().hex
    store = SeaweedStore(
        locate_weed(),
        root=root / "destination-store",
        ports=WeedPorts(*free_ports(8)),
        access_key=key,
        secret_key=secret,
        log_path=root / "destination-store.log",
    )
    store.start()
    try:
        settings = base.model_copy(
            update={
                "s3_endpoint": store.endpoint,
                "s3_access_key": SecretStr(key),
                "s3_secret_key": SecretStr(secret),
            }
        )
        await store.wait_ready(settings, 90.0)
        async with open_s3_client(settings) as client:
            await client.create_bucket(Bucket="customer-archive")
        yield settings
    finally:
        await store.stop()


class ClockFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def set(self, instant: datetime) -> None:
        self.path.write_text(instant.isoformat(), encoding="utf-8")


def start_scheduler(settings: Settings, clock: ClockFile, log: Path) -> subprocess.Popen[bytes]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("USAGE_")}
    env |= settings_env(settings)
    env |= {"USAGE_LOG_FORMAT": "json"}
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.integration.scheduler_process", str(clock.path)],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


async def wait_published_through(
    schedules: ScheduleStore, schedule: Schedule, last: str, *, timeout: float = 90.0
) -> Schedule:
    deadline = time.monotonic() + timeout
    while True:
        current = await schedules.get(schedule.org_id, schedule.schedule_id)
        assert current is not None
        if current.published_through is not None and current.published_through.isoformat() >= last:
            return current
        assert time.monotonic() < deadline, f"published through {current.published_through}"
        await asyncio.sleep(0.2)


async def test_each_period_is_exported_once_through_kills_and_replicas(
    stack: InfraStack,
    make_fresh_settings: FreshSettingsFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not isinstance(stack, EmbeddedStack):
        pytest.skip("the second store is an embedded SeaweedFS")
    settings = await make_fresh_settings(scheduler_interval_s=0.3, schedule_grace_s=GRACE_S)
    records = list(
        simulate(SimConfig(seed=18, orgs=1, events=2500, days=20, end=NOW - timedelta(minutes=10)))
    )
    values = [(record.key, record.value) for record in records]
    ends = await produce(settings, settings.topic_events, values)
    log = build_log([value for _, value in values], valid_at=NOW)

    # The schedule is created 14 days ago on the scheduler's clock.
    created = NOW - timedelta(days=14)
    async with S3ObjectStore(settings, settings.aggregates_bucket) as aggregates:
        schedules = ScheduleStore(aggregates, clock=fixed_clock(created))
        schedule = await schedules.create(
            schedules.new(ORG, "users", "day", ZONE, destination=DESTINATION)
        )
        clock = ClockFile(tmp_path / "scheduler-clock")
        phase_one, phase_two = created + timedelta(days=3), created + timedelta(days=8)
        first_due = due_periods(schedule, to_ms(phase_one), grace_ms=int(GRACE_S * 1000))
        periods = due_periods(schedule, to_ms(phase_two), grace_ms=int(GRACE_S * 1000))
        assert len(first_due) >= 2
        assert len(periods) >= len(first_due) + 4

        async with second_store(settings, tmp_path) as destination:
            assert destination.s3_access_key is not None
            assert destination.s3_secret_key is not None
            monkeypatch.setenv("USAGE_DESTINATION_ARCHIVE_ENDPOINT", destination.s3_endpoint)
            monkeypatch.setenv("USAGE_DESTINATION_ARCHIVE_BUCKET", "customer-archive")
            monkeypatch.setenv("USAGE_DESTINATION_ARCHIVE_PREFIX", DEST_PREFIX)
            monkeypatch.setenv(
                "USAGE_DESTINATION_ARCHIVE_ACCESS_KEY_ID",
                destination.s3_access_key.get_secret_value(),
            )
            monkeypatch.setenv(
                "USAGE_DESTINATION_ARCHIVE_SECRET_ACCESS_KEY",
                destination.s3_secret_key.get_secret_value(),
            )
            async with running_services(settings):
                await wait_until_committed(
                    settings, settings.ingest_group, settings.topic_events, ends
                )
                scheduler_log = tmp_path / "scheduler.log"
                # Phase one: some periods due; the process is killed (no shutdown at all)
                # once it has recorded the first of them.
                clock.set(phase_one)
                first = start_scheduler(settings, clock, scheduler_log)
                try:
                    await wait_published_through(
                        schedules, schedule, first_due[0].last_day.isoformat()
                    )
                finally:
                    first.send_signal(signal.SIGKILL)
                    first.wait(timeout=30)
                assert first.returncode == -signal.SIGKILL
                # Phase two: days later, two replicas at once catch up.
                clock.set(phase_two)
                replicas = [start_scheduler(settings, clock, scheduler_log) for _ in range(2)]
                try:
                    done = await wait_published_through(
                        schedules, schedule, periods[-1].last_day.isoformat()
                    )
                    await asyncio.sleep(1.0)  # any round in flight publishes what it publishes
                finally:
                    for replica in replicas:
                        replica.send_signal(signal.SIGTERM)
                    for replica in replicas:
                        replica.wait(timeout=30)
                assert [replica.returncode for replica in replicas] == [0, 0]
                assert done.published_through == periods[-1].last_day
                # Phase three: progress records lost (as if every process had died between
                # its publications and their records): the periods after the second are
                # published again, under the same ids, and exported no second time.
                await schedules.update(
                    ORG,
                    schedule.schedule_id,
                    lambda s: replace(s, published_through=periods[1].last_day),
                )
                again = start_scheduler(settings, clock, scheduler_log)
                try:
                    await wait_published_through(
                        schedules, schedule, periods[-1].last_day.isoformat()
                    )
                finally:
                    again.send_signal(signal.SIGTERM)
                    again.wait(timeout=30)

                requests = [
                    orjson.loads(record.value)
                    for record in await read_topic(
                        settings, settings.topic_export_requests, expected=len(periods)
                    )
                ]
                completions = [
                    ExportCompletion.model_validate_json(record.value)
                    for record in await read_topic(
                        settings,
                        settings.topic_export_completions,
                        expected=len(requests),
                        timeout=120.0,
                    )
                ]

            exports = S3ObjectStore(settings, settings.exports_bucket)
            async with exports:
                expected_ids = {period_request_id(schedule.schedule_id, p) for p in periods}
                # Every publication is a period's derived request, and every period was published;
                # those after the second at least twice (phase three).
                assert {message["request_id"] for message in requests} == expected_ids
                republished = [period_request_id(schedule.schedule_id, p) for p in periods[2:]]
                for request_id in republished:
                    assert [m["request_id"] for m in requests].count(request_id) >= 2
                for message in requests:
                    assert message["destination"] == DESTINATION
                # Every completion of an id is a success naming the same file.
                files: dict[str, set[str]] = {}
                for completion in completions:
                    assert completion.success, completion.error
                    assert completion.data is not None
                    files.setdefault(completion.request_id, set()).add(completion.data.filePath)
                assert set(files) == expected_ids
                assert all(len(paths) == 1 for paths in files.values())
                # One ledger record and one file per period, nothing else written.
                ledger = await exports.list_objects(f"requests/{ORG}/")
                assert len(ledger) == len(periods)
                written = [
                    item.key
                    for item in await exports.list_objects(f"users-usage/{ORG}/")
                    if item.key.endswith(".csv")
                ]
                assert len(written) == len(periods)
                for period in periods:
                    dates = f"-{period.first_day}-{period.last_day}-"
                    assert sum(dates in key for key in written) == 1, (period, written)
                # The first period's file is the reference's.
                message = period_request(schedule, periods[0])
                expected = reference_request(log, message, now=NOW)
                (path,) = files[message["request_id"]]
                stored = await exports.get(path)
                assert stored is not None
                assert stored.body == reference_csv_bytes(expected)
                assert len(expected.rows) > 0

                # The copies: one per period, the same bytes, in the second store.
                async with S3ObjectStore(destination, "customer-archive") as archive:
                    copies = await archive.list_objects(f"{DEST_PREFIX}/users/")
                    assert len(copies) == len(periods)
                    for period in periods:
                        (path,) = files[period_request_id(schedule.schedule_id, period)]
                        key = f"{DEST_PREFIX}/users/{period.name}/{path.rsplit('/', 1)[-1]}"
                        copy = await archive.get(key)
                        original = await exports.get(path)
                        assert copy is not None
                        assert original is not None
                        assert copy.body == original.body
            # The main identity is unknown to the destination's store: only the
            # destination's own keys can have written the copies.
            main_on_destination = settings.model_copy(
                update={"s3_endpoint": destination.s3_endpoint}
            )
            async with open_s3_client(main_on_destination) as intruder:
                with pytest.raises(ClientError) as refused:
                    await intruder.put_object(Bucket="customer-archive", Key="x", Body=b"x")
            assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
