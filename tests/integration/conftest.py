"""Session fixtures for integration tests: one real broker and object store per session.

``USAGE_TEST_INFRA`` picks them: ``embedded`` (default) starts Tansu and SeaweedFS from
the ``embedded`` extra on free loopback ports in a temporary directory; ``docker``
starts Kafka and MinIO containers with testcontainers (skipped when no Docker engine is
reachable). Either way ``stack.settings`` reaches them and the stack is always stopped.

Tests share the servers, not data: ``fresh_settings`` gives each test its own topics,
buckets and consumer groups.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import pytest
import pytest_asyncio

from shared.embedded import EmbeddedStack, ensure_infrastructure, isolated_settings
from shared.embedded.stack import with_store_keys
from shared.settings import Settings

INFRA_VARIABLE = "USAGE_TEST_INFRA"
_HERE = Path(__file__).parent

FreshSettingsFactory = Callable[..., Awaitable[Settings]]


class InfraStack(Protocol):
    """What tests may rely on, whichever infrastructure runs underneath."""

    @property
    def settings(self) -> Settings: ...


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test under tests/integration is ``integration`` (deselect with -m 'not ...')."""
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest_asyncio.fixture(scope="session")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[InfraStack]:
    choice = os.environ.get(INFRA_VARIABLE, "embedded").strip().lower()
    if choice == "embedded":
        embedded = EmbeddedStack(tmp_path_factory.mktemp("embedded-stack"), startup_timeout_s=120.0)
        async with embedded:
            yield embedded
    elif choice == "docker":
        containers = DockerStack()
        await containers.start()
        try:
            yield containers
        finally:
            await containers.stop()
    else:
        raise pytest.UsageError(f"{INFRA_VARIABLE} must be 'embedded' or 'docker', not {choice!r}")


_FREE_METRICS_PORTS = {
    "ingest_metrics_port": 0,
    "exporter_metrics_port": 0,
    "api_metrics_port": 0,
    "delivery_metrics_port": 0,
    "compactor_metrics_port": 0,
    "api_port": 0,
}


@pytest.fixture(scope="session")
def settings(stack: InfraStack) -> Settings:
    """The stack's own settings: default topic and bucket names, shared by all tests."""
    return stack.settings.model_copy(update=_FREE_METRICS_PORTS)


@pytest.fixture
def make_fresh_settings(stack: InfraStack) -> FreshSettingsFactory:
    """``await make_fresh_settings(**overrides)``: isolated, provisioned Settings.

    Overrides apply before isolation, so e.g. ``events_partitions=3`` sizes the new
    events topic.
    """

    async def make(**overrides: Any) -> Settings:
        # Free ports for /metrics and /health, so several services can run at once.
        base = stack.settings.model_copy(update=_FREE_METRICS_PORTS | overrides)
        fresh = isolated_settings(base, uuid.uuid4().hex[:12])
        await ensure_infrastructure(fresh)
        return fresh

    return make


@pytest_asyncio.fixture
async def fresh_settings(make_fresh_settings: FreshSettingsFactory) -> Settings:
    """Settings with this test's own topics, buckets and consumer groups, all created."""
    return await make_fresh_settings()


# ---- docker ----------------------------------------------------------------------------
_KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"  # testcontainers' Kafka module drives cp-kafka
_MINIO_IMAGE = "minio/minio:RELEASE.2024-12-18T13-15-44Z"


def _docker_unreachable_reason() -> str | None:
    """Why no Docker engine answers, or None. Checked without the docker library, which
    leaks a socket (a ResourceWarning, an error here) when the engine is missing."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        return None  # a remote engine: let testcontainers try it
    path = host.removeprefix("unix://")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2.0)
        try:
            sock.connect(path)
        except OSError as exc:
            return f"{path}: {exc}"
    return None


class DockerStack:
    """Kafka (KRaft) and MinIO containers; real Kafka, so idempotent producers stay on."""

    def __init__(self) -> None:
        self._containers: list[Any] = []
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        assert self._settings is not None, "DockerStack is not started"
        return self._settings

    async def start(self) -> None:
        reason = _docker_unreachable_reason()
        if reason is not None:
            pytest.skip(f"{INFRA_VARIABLE}=docker but no Docker engine is reachable: {reason}")
        from testcontainers.community.kafka import KafkaContainer
        from testcontainers.community.minio import MinioContainer

        base = with_store_keys(Settings())  # MinIO's root keys: the dev pair
        kafka = KafkaContainer(_KAFKA_IMAGE).with_kraft()
        assert base.s3_access_key is not None
        assert base.s3_secret_key is not None
        access, secret = (
            base.s3_access_key.get_secret_value(),
            base.s3_secret_key.get_secret_value(),
        )
        minio = (
            MinioContainer(_MINIO_IMAGE, access_key=access, secret_key=secret)
            # Newer MinIO reads only the ROOT variables; testcontainers sets the old ones.
            .with_env("MINIO_ROOT_USER", access)
            .with_env("MINIO_ROOT_PASSWORD", secret)
        )
        try:
            for container in (kafka, minio):
                self._containers.append(container)  # stop() removes it even half-started
                await asyncio.to_thread(container.start)
            settings = base.model_copy(
                update={
                    "kafka_bootstrap": kafka.get_bootstrap_server(),
                    "s3_endpoint": f"http://{minio.get_config()['endpoint']}",
                    "kafka_idempotence": True,
                }
            )
            await ensure_infrastructure(settings)
        except BaseException:
            await self.stop()
            raise
        self._settings = settings

    async def stop(self) -> None:
        while self._containers:
            await asyncio.to_thread(self._containers.pop().stop)
