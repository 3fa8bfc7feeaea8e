"""Mutual-TLS material for the embedded store's gRPC ports, made fresh at every start.

SeaweedFS secures its gRPC ports (master, volume, filer, S3) only with mutual TLS: each
server presents a certificate and accepts only clients with one signed by the ``ca`` of
its ``security.toml``. :func:`write_grpc_certificates` makes a new certificate authority
in memory, signs one certificate per component with it and writes the component keys and
certificates plus the CA *certificate* into a directory that only the owner can read.
The CA's private key is never written: nothing can mint another certificate the running
store trusts, and the next start trusts none of this one's.

ECDSA P-256 (fast to make: a few milliseconds for all of them), a short validity, and
SANs for ``127.0.0.1`` and ``localhost`` (SeaweedFS does not check host names, but any
other client would). Each component certificate is both a server and a client
certificate: a component presents it when it dials another one.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shared.clock import Clock, system_clock

#: ``[grpc.<component>]`` sections of security.toml that get a certificate; ``client`` is
#: what SeaweedFS's own clients (S3 gateway, shell) present when they dial a server.
GRPC_COMPONENTS = ("master", "volume", "filer", "s3", "client")
#: Long enough for an ``up`` left running for weeks, short enough to be worthless later
#: (the CA is new at every start anyway).
VALIDITY = timedelta(days=30)
#: Tolerance for a clock that a process reads slightly differently.
BACKDATE = timedelta(minutes=5)
ORGANISATION = "usage-export embedded store"


@dataclass(frozen=True, slots=True)
class GrpcCertificates:
    """Paths of the files written by :func:`write_grpc_certificates`."""

    ca: Path
    certs: dict[str, Path]
    keys: dict[str, Path]

    def security_toml(self) -> str:
        """The ``[grpc]`` sections of ``security.toml`` that switch mutual TLS on."""
        lines = ["[grpc]", f"ca = {_toml_string(self.ca)}", ""]
        for component in GRPC_COMPONENTS:
            lines += [
                f"[grpc.{component}]",
                f"cert = {_toml_string(self.certs[component])}",
                f"key = {_toml_string(self.keys[component])}",
                "",
            ]
        return "\n".join(lines)


def _toml_string(path: Path) -> str:
    """``path`` as a TOML basic string (JSON's escapes are TOML's: a data dir may hold
    quotes or backslashes)."""
    return json.dumps(str(path), ensure_ascii=False)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_usage(*, signs_certificates: bool) -> x509.KeyUsage:
    """Digital signatures, plus certificate and CRL signing for the CA alone."""
    # x509.KeyUsage takes its nine flags by keyword, all of them, spelled out here.
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def _ca_certificate(key: ec.EllipticCurvePrivateKey, now: datetime) -> x509.Certificate:
    name = _name("usage-export embedded store CA")
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            _key_usage(signs_certificates=True),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _component_certificate(
    component: str,
    key: ec.EllipticCurvePrivateKey,
    ca_key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
    now: datetime,
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(_name(f"seaweedfs-{component}"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _key_usage(signs_certificates=False),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a file created 0600 (replacing an older one)."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


def write_grpc_certificates(directory: Path, *, clock: Clock = system_clock) -> GrpcCertificates:
    """A fresh CA and one certificate per :data:`GRPC_COMPONENTS`, written to ``directory``
    (made 0700; every file 0600). Files of an earlier start are replaced."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    now = clock()
    ca_key = _new_key()
    ca = _ca_certificate(ca_key, now)
    ca_path = directory / "ca.crt"
    _write_private(ca_path, ca.public_bytes(serialization.Encoding.PEM))
    certs: dict[str, Path] = {}
    keys: dict[str, Path] = {}
    for component in GRPC_COMPONENTS:
        key = _new_key()
        certificate = _component_certificate(component, key, ca_key, ca, now)
        keys[component] = directory / f"{component}.key"
        certs[component] = directory / f"{component}.crt"
        _write_private(
            keys[component],
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        _write_private(certs[component], certificate.public_bytes(serialization.Encoding.PEM))
    return GrpcCertificates(ca=ca_path, certs=certs, keys=keys)
