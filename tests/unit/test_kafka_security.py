"""Kafka TLS and SASL (issue 16, item 4): the settings, the connection options every client
takes, a TLS context that really handshakes (mutual TLS against a local server, with
certificates made here), and that no consumer, producer or admin client in the source is
built without those options."""

from __future__ import annotations

import ast
import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

import shared.embedded.provision as provision
from shared.adapters.kafka import make_consumer, make_producer
from shared.adapters.kafka_connection import (
    KafkaSecurityFileError,
    connection_options,
    kafka_ssl_context,
)
from shared.clock import Clock
from shared.embedded.certificates import GrpcCertificates, write_grpc_certificates
from shared.embedded.provision import TopicSpec
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CLIENT_CLASSES = {"AIOKafkaConsumer", "AIOKafkaProducer", "AIOKafkaAdminClient"}
SASL: dict[str, Any] = {
    "kafka_sasl_mechanism": "SCRAM-SHA-512",
    "kafka_sasl_username": "usage-export",
    "kafka_sasl_password": SecretStr("p4ss-w0rd"),
}

SASL_SSL: dict[str, Any] = {"kafka_security_protocol": "SASL_SSL"} | SASL


@pytest.fixture
def certificates(tmp_path: Path, clock: Clock) -> GrpcCertificates:
    """A CA, and certificates it signed for 127.0.0.1/localhost, each a server's and a
    client's (the embedded store's generator, on ``cryptography``)."""
    return write_grpc_certificates(tmp_path / "tls", clock=clock)


def _tls_settings(certificates: GrpcCertificates, **overrides: Any) -> Settings:
    files = {
        "kafka_ssl_cafile": str(certificates.ca),
        "kafka_ssl_certfile": str(certificates.certs["client"]),
        "kafka_ssl_keyfile": str(certificates.keys["client"]),
    }
    return Settings(kafka_security_protocol="SASL_SSL", **SASL | files | overrides)


# ---- the settings ------------------------------------------------------------------------
def test_plaintext_is_the_default_and_needs_nothing() -> None:
    settings = Settings()
    assert settings.kafka_security_protocol == "PLAINTEXT"
    assert connection_options(settings) == {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": "PLAINTEXT",
    }


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "USAGE_KAFKA_SASL_MECHANISM"),
        (
            {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "PLAIN"},
            "USAGE_KAFKA_SASL_USERNAME",
        ),
        (SASL_SSL | {"kafka_sasl_password": None}, "USAGE_KAFKA_SASL_PASSWORD"),
        (SASL_SSL | {"kafka_sasl_mechanism": "OAUTHBEARER"}, "OAUTHBEARER"),
        (SASL_SSL | {"kafka_sasl_mechanism": "GSSAPI"}, "GSSAPI"),
        ({"kafka_security_protocol": "SSL"} | SASL, "no SASL"),
        ({"kafka_sasl_username": "someone"}, "USAGE_KAFKA_SASL_USERNAME set"),
        ({"kafka_ssl_cafile": "/ca.pem"}, "USAGE_KAFKA_SSL_CAFILE set"),
        (
            {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_ssl_cafile": "/ca.pem"} | SASL,
            "has no TLS",
        ),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_keyfile": "/client.key"},
            "USAGE_KAFKA_SSL_KEYFILE needs USAGE_KAFKA_SSL_CERTFILE",
        ),
        ({"kafka_security_protocol": "TLS"}, "kafka_security_protocol"),
    ],
)  # fmt: skip
def test_incomplete_or_contradictory_security_is_refused_by_name(
    values: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(**values)
    assert named in str(refused.value)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_options_carry_the_mechanism_and_credentials(mechanism: str) -> None:
    settings = Settings(
        kafka_security_protocol="SASL_PLAINTEXT", **SASL | {"kafka_sasl_mechanism": mechanism}
    )
    options = connection_options(settings)
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert options["sasl_mechanism"] == mechanism
    assert options["sasl_plain_username"] == "usage-export"
    assert options["sasl_plain_password"] == "p4ss-w0rd"
    assert "ssl_context" not in options, "SASL_PLAINTEXT: no TLS"


def test_the_sasl_password_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USAGE_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("USAGE_KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("USAGE_KAFKA_SASL_USERNAME", "usage-export")
    monkeypatch.setenv("USAGE_KAFKA_SASL_PASSWORD", "p4ss-w0rd")
    settings = Settings()
    assert isinstance(settings.kafka_sasl_password, SecretStr)
    for shown in (repr(settings), str(settings), settings.model_dump_json()):
        assert "p4ss-w0rd" not in shown
    monkeypatch.delenv("USAGE_KAFKA_SASL_MECHANISM")
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert "p4ss-w0rd" not in str(refused.value)


# ---- the TLS context ---------------------------------------------------------------------
def _common_name(certificate: Any) -> str:
    """The CN of a certificate as the ssl module describes it (nested name pairs)."""
    for relative_name in certificate["subject"]:
        for attribute, value in relative_name:
            if attribute == "commonName":
                return str(value)
    raise AssertionError(f"no common name in {certificate}")


def test_the_tls_context_verifies_the_broker_and_holds_the_files(
    certificates: GrpcCertificates,
) -> None:
    options = connection_options(_tls_settings(certificates))
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    cas = [_common_name(ca) for ca in context.get_ca_certs()]
    assert cas == ["usage-export embedded store CA"]
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"


def test_a_missing_or_wrong_tls_file_is_named(certificates: GrpcCertificates) -> None:
    absent = _tls_settings(certificates, kafka_ssl_cafile=str(certificates.ca.with_name("no.pem")))
    with pytest.raises(KafkaSecurityFileError, match=r"USAGE_KAFKA_SSL_CAFILE=.*no\.pem"):
        kafka_ssl_context(absent)
    mismatched = _tls_settings(certificates, kafka_ssl_keyfile=str(certificates.keys["master"]))
    with pytest.raises(KafkaSecurityFileError, match="USAGE_KAFKA_SSL_KEYFILE"):
        kafka_ssl_context(mismatched)


async def _handshake(certificates: GrpcCertificates, client: ssl.SSLContext) -> str:
    """Connect ``client`` to a local TLS server that requires a client certificate signed
    by the CA; the common name of the certificate the server saw."""
    server_context = ssl.create_default_context(
        ssl.Purpose.CLIENT_AUTH, cafile=str(certificates.ca)
    )
    server_context.verify_mode = ssl.CERT_REQUIRED
    server_context.load_cert_chain(certificates.certs["master"], certificates.keys["master"])
    seen: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.set_result(_common_name(writer.get_extra_info("peercert")))
        writer.write(b"ok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client, server_hostname="localhost"
        )
        assert await reader.read() == b"ok"
        writer.close()
        return await asyncio.wait_for(seen, 10)
    finally:
        server.close()
        await server.wait_closed()


async def test_the_tls_context_completes_a_mutual_tls_handshake(
    certificates: GrpcCertificates,
) -> None:
    context = kafka_ssl_context(_tls_settings(certificates))
    assert await _handshake(certificates, context) == "seaweedfs-client"


async def test_a_broker_signed_by_another_ca_is_refused(
    certificates: GrpcCertificates, tmp_path: Path, clock: Clock
) -> None:
    other = write_grpc_certificates(tmp_path / "other", clock=clock)
    context = kafka_ssl_context(_tls_settings(certificates, kafka_ssl_cafile=str(other.ca)))
    with pytest.raises(ssl.SSLCertVerificationError):
        await _handshake(certificates, context)


# ---- every client takes the options --------------------------------------------------------
def _client_of(kafka_client: Any) -> Any:
    """aiokafka's connection manager, which dials the brokers."""
    return kafka_client.client if hasattr(kafka_client, "client") else kafka_client._client


async def test_consumers_and_producers_connect_with_the_security_settings(
    certificates: GrpcCertificates,
) -> None:
    settings = _tls_settings(certificates)
    built = [
        make_consumer(settings, "usage.events", group_id="usage-ingest"),
        make_consumer(settings, group_id=None, fetch_max_wait_ms=50),
        make_producer(settings),
        make_producer(settings, max_request_size=4 * 1024 * 1024),
    ]
    for kafka_client in built:
        client = _client_of(kafka_client)
        assert client._security_protocol == "SASL_SSL"
        assert isinstance(client._ssl_context, ssl.SSLContext)
        assert client._sasl_mechanism == "SCRAM-SHA-512"
        assert client._sasl_plain_username == "usage-export"
        assert client._sasl_plain_password == "p4ss-w0rd"
    for kafka_client in built:
        await kafka_client.stop()  # never started: closes nothing, but leaves no warning


async def test_the_provisioning_admin_client_connects_with_the_security_settings(
    certificates: GrpcCertificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[dict[str, Any]] = []

    class Refused(Exception):
        pass

    def admin(**options: Any) -> Any:
        built.append(options)
        raise Refused

    monkeypatch.setattr(provision, "AIOKafkaAdminClient", admin)
    with pytest.raises(Refused):
        await provision.ensure_topics(_tls_settings(certificates), [TopicSpec("t", 1, 60_000)])
    (options,) = built
    assert options["security_protocol"] == "SASL_SSL"
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["sasl_plain_password"] == "p4ss-w0rd"


def _constructions() -> Iterator[tuple[str, ast.Call]]:
    for folder in ("services", "shared"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Call):
                    continue
                called = node.func
                name = called.attr if isinstance(called, ast.Attribute) else ""
                name = name or (called.id if isinstance(called, ast.Name) else "")
                if name in CLIENT_CLASSES:
                    yield f"{path.relative_to(ROOT)}:{node.lineno} {name}", node


def _takes_connection_options(call: ast.Call) -> bool:
    arguments = [*call.args, *(keyword.value for keyword in call.keywords)]
    return any(
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name | ast.Attribute)
        and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr)
        == "connection_options"
        for argument in arguments
        for node in ast.walk(argument)
    )


def test_every_kafka_client_in_the_source_is_built_with_the_connection_options() -> None:
    """A client built without them would connect in plaintext to a secured cluster."""
    found = dict(_constructions())
    kinds = {where.rsplit(" ", 1)[1] for where in found}
    assert kinds == CLIENT_CLASSES, f"the scan sees every kind of client: {sorted(found)}"
    assert [where for where, call in found.items() if not _takes_connection_options(call)] == []
