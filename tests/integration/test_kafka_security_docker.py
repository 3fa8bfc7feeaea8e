"""The Kafka security settings against a real broker with a SASL_SSL listener (issue 16,
item 4), where Docker is available: ``USAGE_TEST_INFRA=docker``. Elsewhere it is skipped
(the embedded broker, Tansu, speaks plaintext only); tests/unit/test_kafka_security.py
covers the same wiring without a broker, including a real mutual-TLS handshake.

The broker (apache/kafka, KRaft) gets a certificate for ``localhost`` signed by a CA made
here, and a PLAIN user. The project's own clients, built from Settings alone, then
create a topic (admin client), produce and consume over SASL_SSL; a wrong password and
an unknown CA are refused. SCRAM needs its credentials created on the broker first
(``kafka-storage format --add-scram``), which the image's environment cannot do: the
unit tests cover SCRAM's options, the client side that differs from PLAIN.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaError
from cryptography.hazmat.primitives import serialization

from shared.adapters.kafka import make_consumer, make_producer
from shared.clock import Clock
from shared.embedded.certificates import write_grpc_certificates
from shared.embedded.ports import free_ports
from shared.embedded.provision import TopicSpec, ensure_topics
from shared.settings import Settings

from .conftest import INFRA_VARIABLE, _docker_unreachable_reason

_IMAGE = "apache/kafka:3.9.1"
_USER, _PASSWORD = "usage-export", "s3cure-enough"
_TOPIC = "usage.secured"

pytestmark = pytest.mark.skipif(
    os.environ.get(INFRA_VARIABLE, "embedded").strip().lower() != "docker",
    reason=f"needs a Kafka container with TLS and SASL: run with {INFRA_VARIABLE}=docker "
    "(the embedded broker speaks plaintext only)",
)


def _server_pem(certificates_dir: Path, clock: Clock) -> tuple[bytes, bytes]:
    """(the broker's key and certificate in one PEM file, the CA certificate)."""
    made = write_grpc_certificates(certificates_dir, clock=clock)
    key = serialization.load_pem_private_key(made.keys["master"].read_bytes(), password=None)
    unencrypted_pkcs8 = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return unencrypted_pkcs8 + made.certs["master"].read_bytes(), made.ca.read_bytes()


def _broker_environment(port: int) -> dict[str, str]:
    jaas = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'user_{_USER}="{_PASSWORD}";'
    )
    return {
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_LISTENERS": "BROKER://:9092,CONTROLLER://:9093,SECURE://:9094",
        "KAFKA_ADVERTISED_LISTENERS": f"BROKER://localhost:9092,SECURE://localhost:{port}",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": (
            "BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT,SECURE:SASL_SSL"
        ),
        "KAFKA_INTER_BROKER_LISTENER_NAME": "BROKER",
        "KAFKA_SASL_ENABLED_MECHANISMS": "PLAIN",
        "KAFKA_LISTENER_NAME_SECURE_SASL_ENABLED_MECHANISMS": "PLAIN",
        "KAFKA_LISTENER_NAME_SECURE_PLAIN_SASL_JAAS_CONFIG": jaas,
        "KAFKA_SSL_KEYSTORE_TYPE": "PEM",
        "KAFKA_SSL_KEYSTORE_LOCATION": "/etc/kafka/tls/server.pem",
        "KAFKA_SSL_TRUSTSTORE_TYPE": "PEM",
        "KAFKA_SSL_TRUSTSTORE_LOCATION": "/etc/kafka/tls/ca.pem",
        "KAFKA_SSL_CLIENT_AUTH": "none",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
    }


@pytest.fixture(scope="module")
def secured_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(the SASL_SSL bootstrap address, the CA file that signed the broker's certificate)."""
    reason = _docker_unreachable_reason()
    if reason is not None:
        pytest.skip(f"{INFRA_VARIABLE}=docker but no Docker engine is reachable: {reason}")
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    from shared.clock import fixed_clock
    from tests.clock import NOW

    directory = tmp_path_factory.mktemp("kafka-tls")
    server_pem, ca_pem = _server_pem(directory / "made", fixed_clock(NOW))
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca_pem)
    (port,) = free_ports(1)
    container = (
        DockerContainer(_IMAGE)
        .with_envs(**_broker_environment(port))
        .with_bind_ports(9094, port)
        .with_copy_into_container(server_pem, "/etc/kafka/tls/server.pem", mode=0o644)
        .with_copy_into_container(ca_pem, "/etc/kafka/tls/ca.pem", mode=0o644)
    )
    container.start()
    try:
        wait_for_logs(container, "Kafka Server started", timeout=180)
        yield f"localhost:{port}", ca_file
    finally:
        container.stop()


def _settings(secured: tuple[str, Path], **overrides: Any) -> Settings:
    bootstrap, ca_file = secured
    values: dict[str, Any] = {
        "kafka_bootstrap": bootstrap,
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "PLAIN",
        "kafka_sasl_username": _USER,
        "kafka_sasl_password": _PASSWORD,
        "kafka_ssl_cafile": str(ca_file),
    }
    return Settings(**values | overrides)


async def test_the_clients_work_over_sasl_ssl(secured_broker: tuple[str, Path]) -> None:
    settings = _settings(secured_broker)
    await ensure_topics(settings, [TopicSpec(_TOPIC, 1, 3_600_000)])
    producer = make_producer(settings)
    await producer.start()
    try:
        await producer.send_and_wait(_TOPIC, key=b"k", value=b"over TLS and SASL")
    finally:
        await producer.stop()
    consumer = make_consumer(settings, _TOPIC, group_id="usage-secured")
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 60)
    finally:
        await consumer.stop()
    assert record.value == b"over TLS and SASL"


async def test_a_wrong_password_or_an_unknown_ca_is_refused(
    secured_broker: tuple[str, Path], tmp_path: Path, clock: Clock
) -> None:
    wrong_password = make_producer(_settings(secured_broker, kafka_sasl_password="guess"))
    with pytest.raises(KafkaError):
        await wrong_password.start()
    await wrong_password.stop()
    other_ca = write_grpc_certificates(tmp_path / "other", clock=clock).ca
    unknown_ca = make_producer(_settings(secured_broker, kafka_ssl_cafile=str(other_ca)))
    with pytest.raises(KafkaError):
        await unknown_ca.start()
    await unknown_ca.stop()
