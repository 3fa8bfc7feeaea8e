"""The infrastructure the other tests stand on, and ``usage-export up`` as a real process.

Round trips prove the broker and store do what the services need; the ``up`` tests
prove the contract §7 promises: usage.env once ready, a clean stop on SIGTERM, and no
server left behind even when ``up`` itself is SIGKILLed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from botocore.exceptions import ClientError

from shared.adapters.kafka import make_consumer, make_producer
from shared.embedded.kafka_probe import probe_kafka
from shared.embedded.ports import free_ports
from shared.embedded.s3client import open_s3_client
from shared.embedded.store import WeedPorts, unix_socket_paths
from shared.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
UP_READY_TIMEOUT_S = 90.0


# ---- broker and store ------------------------------------------------------------------
async def test_produced_record_is_consumed_back(fresh_settings: Settings) -> None:
    settings = fresh_settings
    producer = make_producer(settings)
    await producer.start()
    try:
        sent = await producer.send_and_wait(
            settings.topic_events, key=b"ws-acme", value=b'{"event_id": "e-1"}'
        )
    finally:
        await producer.stop()

    partition = TopicPartition(settings.topic_events, sent.partition)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
    )
    consumer.assign([partition])
    await consumer.start()
    try:
        consumer.seek(partition, sent.offset)
        record = await asyncio.wait_for(consumer.getone(), 30)
    finally:
        await consumer.stop()
    assert (record.key, record.value) == (b"ws-acme", b'{"event_id": "e-1"}')
    assert record.offset == sent.offset


async def test_group_commit_is_seen_by_the_next_member(fresh_settings: Settings) -> None:
    settings = fresh_settings
    producer = make_producer(settings)
    await producer.start()
    try:
        sent = [
            await producer.send_and_wait(
                settings.topic_export_requests, key=b"ws", value=f"r{index}".encode(), partition=0
            )
            for index in range(3)
        ]
    finally:
        await producer.stop()

    first = make_consumer(
        settings, settings.topic_export_requests, group_id=settings.exporter_group
    )
    await first.start()
    try:
        records: list[Any] = []
        while len(records) < 3:
            batch = await asyncio.wait_for(first.getmany(timeout_ms=1000), 60)
            records += [record for part in batch.values() for record in part]
        await first.commit()
    finally:
        await first.stop()
    assert [record.value for record in records] == [b"r0", b"r1", b"r2"]

    second = make_consumer(settings, group_id=settings.exporter_group)
    await second.start()
    try:
        committed = await second.committed(TopicPartition(settings.topic_export_requests, 0))
    finally:
        await second.stop()
    assert committed == sent[-1].offset + 1


async def test_object_put_get_and_conditional_create(fresh_settings: Settings) -> None:
    settings = fresh_settings
    async with open_s3_client(settings) as client:
        put = await client.put_object(
            Bucket=settings.aggregates_bucket, Key="a/b.json", Body=b'{"x": 1}', IfNoneMatch="*"
        )
        response = await client.get_object(Bucket=settings.aggregates_bucket, Key="a/b.json")
        async with response["Body"] as body:
            assert await body.read() == b'{"x": 1}'
        assert response["ETag"] == put["ETag"]
        with pytest.raises(ClientError) as lost_race:
            await client.put_object(
                Bucket=settings.aggregates_bucket, Key="a/b.json", Body=b"other", IfNoneMatch="*"
            )
    assert lost_race.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412


def _http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - test URL
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


async def test_presigned_url_downloads_and_anonymous_get_is_refused(
    fresh_settings: Settings,
) -> None:
    settings = fresh_settings
    key = "users-usage/ws-acme/export.csv"
    async with open_s3_client(settings) as client:
        await client.put_object(Bucket=settings.exports_bucket, Key=key, Body=b"user_id\nu1\n")
        url = await client.generate_presigned_url(
            "get_object", Params={"Bucket": settings.exports_bucket, "Key": key}, ExpiresIn=60
        )
    assert url.startswith(f"{settings.s3_endpoint}/{settings.exports_bucket}/")

    assert await asyncio.to_thread(_http_get, url) == (200, b"user_id\nu1\n")
    status, _ = await asyncio.to_thread(
        _http_get, f"{settings.s3_endpoint}/{settings.exports_bucket}/{key}"
    )
    assert status == 403


# ---- usage-export up as a process -----------------------------------------------------
def _state(pid: int) -> str | None:
    """Process state letter from /proc (``Z`` for a zombie), None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[0]


def _alive(pid: int) -> bool:
    return _state(pid) not in (None, "Z")


def _children(pid: int) -> dict[int, str]:
    """Direct children of ``pid``: pid -> command name."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name, _, rest = stat.partition("(")[2].rpartition(")")
        if int(rest.split()[1]) == pid:
            found[int(entry.name)] = name
    return found


def _weed_ports(pid: int) -> WeedPorts | None:
    """The ports a running ``weed server`` was given, read from its command line."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return None
    flags = dict(
        arg.lstrip("-").split("=", 1) for arg in argv if arg.startswith("-") and "=" in arg
    )
    names = (
        "s3.port",
        "s3.port.grpc",
        "master.port",
        "master.port.grpc",
        "volume.port",
        "volume.port.grpc",
        "filer.port",
        "filer.port.grpc",
    )
    return WeedPorts(*(int(flags[name]) for name in names))


class UpProcess:
    def __init__(
        self,
        process: asyncio.subprocess.Process,
        data_dir: Path,
        output: Path,
        kafka_port: int,
        s3_port: int,
    ) -> None:
        self.process = process
        self.data_dir = data_dir
        self.output = output
        self.kafka_port = kafka_port
        self.s3_port = s3_port

    @property
    def env_file(self) -> Path:
        return self.data_dir / "usage.env"

    def output_tail(self) -> str:
        return "\n".join(self.output.read_text(errors="replace").splitlines()[-40:])

    async def wait_ready(self) -> dict[str, str]:
        """The variables of usage.env once ``up`` has written it."""
        deadline = time.monotonic() + UP_READY_TIMEOUT_S
        while not self.env_file.exists():
            assert self.process.returncode is None, f"up exited early:\n{self.output_tail()}"
            assert time.monotonic() < deadline, f"no usage.env in time:\n{self.output_tail()}"
            await asyncio.sleep(0.2)
        lines = self.env_file.read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if line)

    async def wait_exit(self, timeout_s: float = 30.0) -> int:
        return await asyncio.wait_for(self.process.wait(), timeout_s)


@asynccontextmanager
async def running_up(
    tmp_path: Path, *extra: str, infra_only: bool = True, env: dict[str, str] | None = None
) -> AsyncIterator[UpProcess]:
    """``usage-export up`` (``--infra-only`` unless told) on free ports; killed at the end
    whatever happens."""
    kafka_port, s3_port = free_ports(2)
    data_dir, output = tmp_path / "data", tmp_path / "up.out"
    with output.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services",
            "up",
            *(["--infra-only"] if infra_only else []),
            "--data-dir",
            str(data_dir),
            "--kafka-port",
            str(kafka_port),
            "--s3-port",
            str(s3_port),
            "--log-level",
            "WARNING",
            *extra,
            stdout=sink,
            stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
            cwd=REPO_ROOT,
            env=os.environ | {"PYTHONUNBUFFERED": "1"} | (env or {}),
        )
    up = UpProcess(process, data_dir, output, kafka_port, s3_port)
    try:
        yield up
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _wait_gone(pids: list[int], timeout_s: float) -> list[int]:
    """The pids still alive after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        alive = [pid for pid in pids if _alive(pid)]
        if not alive or time.monotonic() >= deadline:
            return alive
        await asyncio.sleep(0.1)


async def test_up_infra_only_serves_writes_env_and_stops_on_sigterm(tmp_path: Path) -> None:
    async with running_up(tmp_path) as up:
        env = await up.wait_ready()
        assert env["USAGE_KAFKA_BOOTSTRAP"] == f"127.0.0.1:{up.kafka_port}"
        assert env["USAGE_S3_ENDPOINT"] == f"http://127.0.0.1:{up.s3_port}"
        assert env["USAGE_KAFKA_IDEMPOTENCE"] == "false"
        assert up.env_file.stat().st_mode & 0o077 == 0, "usage.env holds the secret key"
        assert up.data_dir.stat().st_mode & 0o077 == 0, "the data dir is the owner's alone"
        # up writes usage.env, then prints its banner: wait for the banner too.
        deadline = time.monotonic() + 10.0
        while str(up.env_file) not in (banner := up.output.read_text()):
            assert time.monotonic() < deadline, f"no banner naming usage.env:\n{banner}"
            await asyncio.sleep(0.1)
        secrets = [env["USAGE_S3_SECRET_KEY"], env["USAGE_S3_PRESIGN_SECRET_KEY"]]
        assert [secret for secret in secrets if secret in banner] == []

        settings = Settings(_env_file=up.env_file)
        assert settings.kafka_idempotence is False
        assert await probe_kafka("127.0.0.1", up.kafka_port)
        async with open_s3_client(settings) as client:
            buckets = {bucket["Name"] for bucket in (await client.list_buckets())["Buckets"]}
        assert {settings.aggregates_bucket, settings.exports_bucket} <= buckets

        servers = _children(up.process.pid)
        assert sorted(servers.values()) == ["tansu", "weed"], up.output_tail()

        up.process.send_signal(signal.SIGTERM)
        assert await up.wait_exit() == 0, up.output_tail()
        assert await _wait_gone(list(servers), 1.0) == []
        assert not up.env_file.exists(), "usage.env must not outlive the servers it names"
        assert "Traceback" not in up.output.read_text()


async def test_up_takes_any_free_port_for_0_and_names_it_in_usage_env(tmp_path: Path) -> None:
    async with running_up(tmp_path, "--kafka-port", "0", "--s3-port", "0") as up:
        env = await up.wait_ready()
        host, _, kafka_port = env["USAGE_KAFKA_BOOTSTRAP"].rpartition(":")
        s3_port = env["USAGE_S3_ENDPOINT"].rpartition(":")[2]
        assert host == "127.0.0.1"
        assert int(kafka_port) not in (0, up.kafka_port)
        assert int(s3_port) not in (0, up.s3_port, int(kafka_port))
        assert await probe_kafka("127.0.0.1", int(kafka_port))
        settings = Settings(_env_file=up.env_file)
        async with open_s3_client(settings) as client:
            buckets = {bucket["Name"] for bucket in (await client.list_buckets())["Buckets"]}
        assert settings.aggregates_bucket in buckets
        up.process.send_signal(signal.SIGTERM)
        assert await up.wait_exit() == 0, up.output_tail()


async def test_sigkill_of_up_leaves_no_server_behind(tmp_path: Path) -> None:
    async with running_up(tmp_path) as up:
        await up.wait_ready()
        servers = _children(up.process.pid)
        assert sorted(servers.values()) == ["tansu", "weed"], up.output_tail()
        weed_ports = _weed_ports(next(pid for pid, name in servers.items() if name == "weed"))

        up.process.kill()
        await up.wait_exit()
        assert await _wait_gone(list(servers), 5.0) == []
    if weed_ports is not None:  # nobody ran weed's clean-up: remove its /tmp sockets
        for path in unix_socket_paths(weed_ports):
            path.unlink(missing_ok=True)


async def test_up_stops_everything_and_fails_when_a_server_dies(tmp_path: Path) -> None:
    async with running_up(tmp_path) as up:
        await up.wait_ready()
        servers = {name: pid for pid, name in _children(up.process.pid).items()}
        os.kill(servers["tansu"], signal.SIGKILL)
        assert await up.wait_exit() == 1, up.output_tail()
        assert await _wait_gone(list(servers.values()), 1.0) == []
    assert "tansu exited unexpectedly" in up.output.read_text()


async def test_up_reports_a_busy_port_without_traceback(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        busy = blocker.getsockname()[1]
        output = tmp_path / "up.out"
        with output.open("wb") as sink:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "services",
                "up",
                "--infra-only",
                "--data-dir",
                str(tmp_path / "data"),
                "--kafka-port",
                str(busy),
                "--s3-port",
                str(free_ports(1)[0]),
                stdout=sink,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
                cwd=REPO_ROOT,
                env=os.environ | {"PYTHONUNBUFFERED": "1"},
            )
        status = await asyncio.wait_for(process.wait(), 60)
    text = output.read_text()
    assert status == 1, text
    assert f"127.0.0.1:{busy} is already in use" in text
    assert "Traceback" not in text


def _health(port: int) -> int | None:
    try:
        return _http_get(f"http://127.0.0.1:{port}/health/live")[0]
    except OSError:
        return None


async def test_up_takes_free_metrics_ports_when_the_defaults_are_busy(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        busy = str(blocker.getsockname()[1])
        (api_port,) = free_ports(1)
        settings_env = {"USAGE_INGEST_METRICS_PORT": busy, "USAGE_EXPORTER_METRICS_PORT": busy}
        flags = ("--api-port", str(api_port), "--api-metrics-port", "0")
        async with running_up(tmp_path, *flags, infra_only=False, env=settings_env) as up:
            env = await up.wait_ready()
            services = ("INGEST", "EXPORTER", "API", "DELIVERY", "SCHEDULER")
            names = [f"USAGE_{name}_METRICS_PORT" for name in services]
            ports = [int(env[name]) for name in names]
            assert int(busy) not in ports
            assert len(set(ports)) == len(services)
            assert 0 not in ports
            deadline = time.monotonic() + UP_READY_TIMEOUT_S
            while [await asyncio.to_thread(_health, port) for port in ports] != [200] * len(ports):
                assert up.process.returncode is None, up.output_tail()
                assert time.monotonic() < deadline, up.output_tail()
                await asyncio.sleep(0.5)
            up.process.send_signal(signal.SIGTERM)
            assert await up.wait_exit(90) == 0, up.output_tail()
    assert "Traceback" not in up.output.read_text()
