"""The embedded store's gRPC certificates: a fresh CA, one chain per component."""

from __future__ import annotations

import ipaddress
import ssl
import tomllib
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from shared.clock import fixed_clock
from shared.embedded.certificates import GRPC_COMPONENTS, VALIDITY, write_grpc_certificates
from tests.clock import NOW


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_each_component_has_a_p256_certificate_of_the_fresh_ca(tmp_path: Path) -> None:
    now = NOW.replace(microsecond=0)  # certificates keep whole seconds
    written = write_grpc_certificates(tmp_path / "tls", clock=fixed_clock(now))
    ca = _load(written.ca)
    assert set(written.certs) == set(written.keys) == set(GRPC_COMPONENTS)
    ca_usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert (ca_usage.digital_signature, ca_usage.key_cert_sign, ca_usage.crl_sign) == (True,) * 3
    assert (ca_usage.key_encipherment, ca_usage.data_encipherment) == (False, False)
    for component in GRPC_COMPONENTS:
        certificate = _load(written.certs[component])
        certificate.verify_directly_issued_by(ca)
        public_key = certificate.public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        assert public_key.curve.name == "secp256r1"
        assert certificate.not_valid_after_utc - now == VALIDITY
        assert certificate.not_valid_before_utc < now
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
        assert names.get_values_for_type(x509.DNSName) == ["localhost"]
        usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
        key_usage = certificate.extensions.get_extension_for_class(x509.KeyUsage)
        assert key_usage.critical
        usage = key_usage.value
        assert (usage.digital_signature, usage.key_cert_sign, usage.crl_sign) == (1, 0, 0)
        # The pair loads as a TLS identity.
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(
            written.certs[component], written.keys[component]
        )


def test_only_the_owner_can_read_them_and_the_ca_key_is_not_written(tmp_path: Path) -> None:
    directory = tmp_path / "tls"
    written = write_grpc_certificates(directory)
    assert directory.stat().st_mode & 0o777 == 0o700
    assert {path.stat().st_mode & 0o777 for path in directory.iterdir()} == {0o600}
    assert sorted(path.name for path in directory.glob("*.key")) == sorted(
        f"{component}.key" for component in GRPC_COMPONENTS
    )
    assert "PRIVATE KEY" not in written.ca.read_text()


def test_every_start_makes_a_new_ca(tmp_path: Path) -> None:
    first = _load(write_grpc_certificates(tmp_path / "tls").ca)
    second = write_grpc_certificates(tmp_path / "tls")
    assert _load(second.ca).public_key() != first.public_key()
    assert _load(second.certs["filer"]).issuer == first.subject  # same name, other key


def test_security_toml_names_the_ca_and_every_components_pair(tmp_path: Path) -> None:
    written = write_grpc_certificates(tmp_path / "tls")
    text = written.security_toml()
    assert f'[grpc]\nca = "{written.ca}"' in text
    for component in GRPC_COMPONENTS:
        section = (
            f'[grpc.{component}]\ncert = "{written.certs[component]}"\n'
            f'key = "{written.keys[component]}"'
        )
        assert section in text


def test_security_toml_quotes_paths_with_quotes_and_backslashes(tmp_path: Path) -> None:
    directory = tmp_path / 'odd "dir" \\ ü'
    written = write_grpc_certificates(directory)
    parsed = tomllib.loads(written.security_toml())
    assert parsed["grpc"]["ca"] == str(written.ca)
    assert parsed["grpc"]["filer"]["key"] == str(written.keys["filer"])
