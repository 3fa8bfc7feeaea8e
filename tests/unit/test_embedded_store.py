"""The SeaweedFS command line and config files, without starting it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from shared.embedded.store import (
    JWT_KEY_VARIABLES,
    MASTER_TOML,
    SECURITY_TOML,
    ReadOnlyIdentity,
    WeedPorts,
    fresh_jwt_keys,
    identities_document,
    unix_socket_paths,
    weed_environment,
    weed_server_argv,
)

PORTS = WeedPorts(8333, 40001, 40002, 40003, 40004, 40005, 40006, 40007)


def _argv() -> list[str]:
    return weed_server_argv(
        Path("/bin/weed"),
        data_dir=Path("/d/data"),
        identities_path=Path("/d/identities.json"),
        ports=PORTS,
    )


def test_every_listener_gets_its_own_explicit_port() -> None:
    argv = _argv()
    given = [int(arg.split("=")[1]) for arg in argv if re.match(r"-[\w.]*[pP]ort[\w.]*=", arg)]
    assert sorted(given) == sorted([*PORTS, 0, 0, 0])  # + iceberg, lance, metrics disabled
    assert "-s3.port.iceberg=0" in argv
    assert "-s3.port.lance=0" in argv
    assert "-metricsPort=0" in argv


def test_everything_binds_loopback_and_phones_nowhere() -> None:
    argv = _argv()
    assert "-ip=127.0.0.1" in argv
    assert "-ip.bind=127.0.0.1" in argv
    assert "-master.telemetry=false" in argv
    assert "-s3.config=/d/identities.json" in argv


def test_identities_grant_one_key_everything() -> None:
    document = identities_document("ak", "sk")
    identity: dict[str, Any]
    (identity,) = document["identities"]  # type: ignore[misc]
    assert identity["credentials"] == [{"accessKey": "ak", "secretKey": "sk"}]
    assert set(identity["actions"]) == {"Admin", "Read", "Write", "List", "Tagging"}


def test_one_volume_grows_per_bucket() -> None:
    assert "copy_1 = 1" in MASTER_TOML


def test_unix_sockets_are_named_by_our_ports() -> None:
    names = {path.name for path in unix_socket_paths(PORTS, Path("/tmp"))}
    assert "seaweedfs-master-grpc-40003.sock" in names
    assert "seaweedfs-s3-8333.sock" in names
    assert len(names) == 6


def test_only_the_s3_port_answers_http_without_a_token() -> None:
    argv = _argv()
    assert "-filer.disableHttp" in argv  # the filer took anonymous PUTs (issue 13)
    assert "-disableHttp" in argv  # the master's assign/lookup/grow/delete
    assert "ui = false" in SECURITY_TOML
    assert "[jwt" not in SECURITY_TOML  # the keys come from the environment, never disk


def test_volume_tokens_are_fresh_and_the_users_weed_variables_are_dropped() -> None:
    first, second = fresh_jwt_keys(), fresh_jwt_keys()
    assert set(first) == set(JWT_KEY_VARIABLES)
    assert len(set(first.values()) | set(second.values())) == 2 * len(JWT_KEY_VARIABLES)
    env = weed_environment(first, {"PATH": "/bin", "WEED_JWT_SIGNING_KEY": "", "WEED_X": "1"})
    assert env == {"PATH": "/bin", **first}


def test_the_presign_identity_may_only_read_the_exports_buckets() -> None:
    document = identities_document("ak", "sk", ReadOnlyIdentity("pk", "ps", "usage-exports"))
    admin: dict[str, Any]
    reader: dict[str, Any]
    admin, reader = document["identities"]  # type: ignore[misc]
    assert admin["credentials"] == [{"accessKey": "ak", "secretKey": "sk"}]
    assert reader["credentials"] == [{"accessKey": "pk", "secretKey": "ps"}]
    assert reader["actions"] == ["Read:usage-exports*"]
