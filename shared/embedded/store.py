"""The embedded S3-compatible store: one ``weed server`` (master, volume, filer, S3 gateway).

SeaweedFS has several defaults that are wrong for a developer laptop or CI, each one
corrected here on purpose:

* every listener gets an explicit loopback port: otherwise each gRPC port is its HTTP
  port + 10000 (fatal above 55535) and Iceberg/Lance listeners take fixed ports 8181/9101;
* ``-ip`` defaults to the host's first address, which would put servers off loopback;
* master.volume_growth would grow 7 volumes per bucket against 8 volume slots, so the
  second bucket cannot be written: we grow one volume per bucket, size volumes at
  ``VOLUME_SIZE_LIMIT_MB`` and let ``-volume.max=0`` derive the slots from free disk;
* an identities file with one admin identity (the settings' keys) makes the store refuse
  anonymous requests, as a real bucket policy would; a second, read-only identity (the
  presign keys) may only read the exports bucket, and signs the download URLs;
* only the S3 port answers without a token (issue 13): the filer's HTTP API is off
  (``-filer.disableHttp``; S3 reaches the filer over gRPC), so is the master's
  (``-disableHttp``: no assign, lookup, grow or collection delete; its read-only status
  page remains), and the volume server accepts reads and writes only with a JWT signed
  by keys made fresh at every start and passed in the environment (``WEED_JWT_*``), so
  they are never on disk; ``security.toml`` in the working directory shadows any in
  ``$HOME/.seaweedfs`` or ``/etc/seaweedfs``;
* the gRPC ports (master, volume, filer, S3, and their Unix sockets in /tmp) want mutual
  TLS: a CA and one certificate per component, made fresh at every start in the 0700
  ``grpc-tls/`` folder (the CA's private key is never written; see
  :mod:`shared.embedded.certificates`). Without it any local process could call the
  filer's CreateEntry and forge or alter stored objects;
* ``-volume.preStopSeconds=0``: no 10 s pause before the volume server stops.

On SIGTERM ``weed`` starts a graceful gRPC stop that waits for its own internal streams
and so never ends; the process is SIGKILLed after a short grace. That is safe for the
data: volumes and the filer's LevelDB are written through to the OS as they change.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import astuple, dataclass
from pathlib import Path

from shared.clock import Clock, system_clock
from shared.embedded.certificates import write_grpc_certificates
from shared.embedded.ports import LOOPBACK
from shared.embedded.processes import ServerProcess, wait_ready
from shared.embedded.s3client import open_s3_client
from shared.settings import Settings

VOLUME_SIZE_LIMIT_MB = 128
IDENTITY_ACTIONS = ("Admin", "Read", "Write", "List", "Tagging")

#: The volume server's write and read JWT keys, the filer's (its HTTP API is off: kept
#: in case a SeaweedFS release turns some of it back on).
JWT_KEY_VARIABLES = (
    "WEED_JWT_SIGNING_KEY",
    "WEED_JWT_SIGNING_READ_KEY",
    "WEED_JWT_FILER_SIGNING_KEY",
    "WEED_JWT_FILER_SIGNING_READ_KEY",
)

# Read by ``weed`` from its working directory, before $HOME/.seaweedfs and /etc/seaweedfs.
SECURITY_TOML = """\
# Written by usage-export at every start. The JWT signing keys are not here: they come
# from the environment (WEED_JWT_*), fresh at every start; the [grpc] sections (mutual
# TLS, certificates in grpc-tls/) follow. This file shadows any security.toml in
# $HOME/.seaweedfs or /etc/seaweedfs.
[access]
ui = false
"""

# Read by ``weed`` from its working directory.
MASTER_TOML = """\
# Written by usage-export: grow one volume per collection (bucket) at a time.
[master.volume_growth]
copy_1 = 1
copy_2 = 2
copy_3 = 3
copy_other = 1
"""


@dataclass(frozen=True, slots=True)
class WeedPorts:
    """Every TCP port ``weed server`` listens on, all passed explicitly."""

    s3: int
    s3_grpc: int
    master: int
    master_grpc: int
    volume: int
    volume_grpc: int
    filer: int
    filer_grpc: int

    def __iter__(self) -> Iterator[int]:
        return iter(astuple(self))


@dataclass(frozen=True, slots=True)
class ReadOnlyIdentity:
    """Keys that may only read objects of buckets whose names start with ``bucket``
    (``usage-exports`` and the tests' ``usage-exports-<tag>``): they sign download URLs."""

    access_key: str
    secret_key: str
    bucket: str


def identities_document(
    access_key: str, secret_key: str, read_only: ReadOnlyIdentity | None = None
) -> dict[str, object]:
    """The ``-s3.config`` file: one identity allowed everything, optionally one allowed
    to read one bucket (prefix), nobody else anything."""
    identities: list[dict[str, object]] = [
        {
            "name": "usage-export",
            "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
            "actions": list(IDENTITY_ACTIONS),
        }
    ]
    if read_only is not None:
        identities.append(
            {
                "name": "usage-export-presign",
                "credentials": [
                    {"accessKey": read_only.access_key, "secretKey": read_only.secret_key}
                ],
                "actions": [f"Read:{read_only.bucket}*"],
            }
        )
    return {"identities": identities}


def weed_environment(
    jwt_keys: Mapping[str, str], inherited: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``inherited`` (default: ours) without any ``WEED_*`` variable, plus the JWT keys.

    A ``WEED_JWT_SIGNING_KEY=`` left in the user's shell would otherwise switch the
    volume server's tokens off: a set variable wins over security.toml.
    """
    source = os.environ if inherited is None else inherited
    kept = {name: value for name, value in source.items() if not name.startswith("WEED_")}
    return kept | dict(jwt_keys)


def fresh_jwt_keys() -> dict[str, str]:
    """A random key for each of :data:`JWT_KEY_VARIABLES` (256 bits each)."""
    return {name: secrets.token_urlsafe(32) for name in JWT_KEY_VARIABLES}


def weed_server_argv(
    binary: Path, *, data_dir: Path, identities_path: Path, ports: WeedPorts, host: str = LOOPBACK
) -> list[str]:
    """The ``weed server`` command line: one process, every listener on ``host``."""
    return [
        str(binary),
        "server",
        f"-dir={data_dir}",
        f"-ip={host}",
        f"-ip.bind={host}",
        f"-master.port={ports.master}",
        f"-master.port.grpc={ports.master_grpc}",
        "-master.telemetry=false",
        f"-master.volumeSizeLimitMB={VOLUME_SIZE_LIMIT_MB}",
        f"-volume.port={ports.volume}",
        f"-volume.port.grpc={ports.volume_grpc}",
        "-volume.max=0",
        "-volume.preStopSeconds=0",
        "-disableHttp",  # the master's HTTP API: assign, lookup, grow, delete
        "-filer",
        "-filer.disableHttp",  # S3 talks to the filer over gRPC
        f"-filer.port={ports.filer}",
        f"-filer.port.grpc={ports.filer_grpc}",
        "-s3",
        f"-s3.port={ports.s3}",
        f"-s3.port.grpc={ports.s3_grpc}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={identities_path}",
        "-metricsPort=0",
    ]


def unix_socket_paths(ports: WeedPorts, tmp_dir: Path = Path("/tmp")) -> list[Path]:  # noqa: S108
    """Unix sockets ``weed`` creates beside its TCP listeners, named by port.

    A SIGKILLed server leaves them behind; they are ours because the ports were.
    """
    names = [
        f"seaweedfs-master-grpc-{ports.master_grpc}.sock",
        f"seaweedfs-volume-grpc-{ports.volume_grpc}.sock",
        f"seaweedfs-filer-grpc-{ports.filer_grpc}.sock",
        f"seaweedfs-s3-grpc-{ports.s3_grpc}.sock",
        f"seaweedfs-filer-{ports.filer}.sock",
        f"seaweedfs-s3-{ports.s3}.sock",
    ]
    return [tmp_dir / name for name in names]


class SeaweedStore:
    """One ``weed server`` process rooted at ``root``: config files, ``data/``, log."""

    def __init__(
        self,
        binary: Path,
        *,
        root: Path,
        ports: WeedPorts,
        access_key: str,
        secret_key: str,
        log_path: Path,
        read_only: ReadOnlyIdentity | None = None,
        grace_s: float = 2.0,
        host: str = LOOPBACK,
        clock: Clock = system_clock,
    ) -> None:
        self.root = root
        self.ports = ports
        self.host = host
        self._access_key = access_key
        self._secret_key = secret_key
        self._read_only = read_only
        self._clock = clock
        self.process = ServerProcess(
            "weed",
            weed_server_argv(
                binary,
                data_dir=root / "data",
                identities_path=root / "identities.json",
                ports=ports,
                host=host,
            ),
            log_path=log_path,
            cwd=root,
            env=weed_environment(fresh_jwt_keys()),
            grace_s=grace_s,
        )

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.ports.s3}"

    def start(self) -> None:
        """Write the config files (fresh each start: keys may change), then spawn.

        The root is the owner's alone (0700): it holds the identities, the gRPC
        certificates and keys, and the data.
        """
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.root.chmod(0o700)
        (self.root / "data").mkdir(mode=0o700, exist_ok=True)
        (self.root / "master.toml").write_text(MASTER_TOML, encoding="utf-8")
        grpc_tls = write_grpc_certificates(self.root / "grpc-tls", clock=self._clock)
        security = f"{SECURITY_TOML}\n{grpc_tls.security_toml()}"
        (self.root / "security.toml").write_text(security, encoding="utf-8")
        identities = self.root / "identities.json"
        identities.touch(mode=0o600)
        identities.chmod(0o600)  # it holds the secret keys
        document = identities_document(self._access_key, self._secret_key, self._read_only)
        identities.write_text(json.dumps(document, indent=2), encoding="utf-8")
        self._remove_unix_sockets()
        self.process.start()

    async def wait_ready(self, settings: Settings, timeout_s: float) -> None:
        """Ready once an authenticated ListBuckets succeeds (master, filer and S3 are up)."""

        async def probe() -> None:
            async with open_s3_client(settings, timeout_s=2.0) as client:
                await client.list_buckets()

        await wait_ready(
            self.process,
            probe,
            timeout_s=timeout_s,
            what=f"S3 store (SeaweedFS) on {self.endpoint}",
        )

    async def stop(self) -> None:
        await self.process.stop()
        self._remove_unix_sockets()

    def _remove_unix_sockets(self) -> None:
        for path in unix_socket_paths(self.ports):
            if path.is_socket():
                path.unlink(missing_ok=True)
