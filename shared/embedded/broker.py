"""The embedded Kafka-compatible broker: Tansu with in-memory storage on one loopback port.

Memory storage keeps start-up instant and leaves nothing on disk; the price is that a
restart empties every topic and consumer group, which the services tolerate (ingest
deduplicates by event id, so re-reading or losing offsets cannot double count).
"""

from __future__ import annotations

import os
from pathlib import Path

from shared.embedded.kafka_probe import probe_kafka
from shared.embedded.ports import LOOPBACK
from shared.embedded.processes import ServerProcess, wait_ready

# Tansu reads these from the environment too; a developer's shell must not point the
# embedded broker at a telemetry collector or a schema registry.
_TANSU_ENV = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)


def tansu_argv(binary: Path, *, port: int, host: str = LOOPBACK) -> list[str]:
    """Command line of a memory-backed broker listening (and advertising) ``host:port``."""
    url = f"tcp://{host}:{port}"
    return [
        str(binary),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]


class TansuBroker:
    """One Tansu process: ``start()``, ``await wait_ready()``, ``await stop()``."""

    def __init__(
        self, binary: Path, *, port: int, log_path: Path, grace_s: float = 5.0, host: str = LOOPBACK
    ) -> None:
        self.host = host
        self.port = port
        env = {name: value for name, value in os.environ.items() if name not in _TANSU_ENV}
        self.process = ServerProcess(
            "tansu",
            tansu_argv(binary, port=port, host=host),
            log_path=log_path,
            env=env,
            grace_s=grace_s,
        )

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        self.process.start()

    async def wait_ready(self, timeout_s: float) -> None:
        await wait_ready(
            self.process,
            lambda: probe_kafka(self.host, self.port),
            timeout_s=timeout_s,
            what=f"Kafka broker (Tansu) on {self.bootstrap}",
        )

    async def stop(self) -> None:
        await self.process.stop()
