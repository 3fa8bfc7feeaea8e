"""How every Kafka client of the project connects: the broker addresses and the security
(TLS, SASL) of ``USAGE_KAFKA_*``, in one place.

Every ``AIOKafkaConsumer``, ``AIOKafkaProducer`` and ``AIOKafkaAdminClient`` the services
and commands build takes :func:`connection_options` (a unit test reads the source to hold
that), so a new client cannot come up in plaintext against a secured cluster. The
combinations of settings are checked when the settings are read
(``shared.settings.kafka_security_problem``); the files are read here, when a client is
built, so a missing or unreadable file fails the start with its setting's name.
"""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka.helpers import create_ssl_context

from shared.errors import UsageExportError
from shared.settings import Settings


class KafkaSecurityFileError(UsageExportError):
    """A ``USAGE_KAFKA_SSL_*`` file cannot be read or is not what it should be."""


def connection_options(settings: Settings) -> dict[str, Any]:
    """aiokafka keyword arguments that every client (consumer, producer, admin) takes:
    ``bootstrap_servers``, ``security_protocol`` and, as the protocol needs them,
    ``ssl_context`` and the SASL mechanism and credentials."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": protocol,
    }
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = kafka_ssl_context(settings)
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        password = settings.kafka_sasl_password
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = None if password is None else password.get_secret_value()
    return options


def kafka_ssl_context(settings: Settings) -> ssl.SSLContext:
    """A client TLS context that verifies the broker's certificate and host name: against
    ``USAGE_KAFKA_SSL_CAFILE`` if set, else the system's CAs; with the client certificate
    of ``USAGE_KAFKA_SSL_CERTFILE`` (and ``_KEYFILE``) for mutual TLS when set."""
    files = {
        "USAGE_KAFKA_SSL_CAFILE": settings.kafka_ssl_cafile,
        "USAGE_KAFKA_SSL_CERTFILE": settings.kafka_ssl_certfile,
        "USAGE_KAFKA_SSL_KEYFILE": settings.kafka_ssl_keyfile,
    }
    try:
        context: ssl.SSLContext = create_ssl_context(
            cafile=settings.kafka_ssl_cafile,
            certfile=settings.kafka_ssl_certfile,
            keyfile=settings.kafka_ssl_keyfile,
        )
    except (OSError, ssl.SSLError) as exc:
        named = ", ".join(f"{name}={path}" for name, path in files.items() if path)
        raise KafkaSecurityFileError(f"cannot load the Kafka TLS files ({named}): {exc}") from exc
    return context
