"""The embedded stack: a Kafka-compatible broker and an S3-compatible store, provisioned.

``async with EmbeddedStack(data_dir) as stack:`` gives ``stack.settings`` pointing at
both servers, with the topics and buckets of those settings created. Used by
``usage-export up`` and by the integration-test session fixture.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import hmac
import os
import time
from pathlib import Path

from pydantic import SecretStr

from shared.embedded.binaries import locate_tansu, locate_weed
from shared.embedded.broker import TansuBroker
from shared.embedded.envfile import stack_env
from shared.embedded.ports import free_ports, require_free_port
from shared.embedded.provision import DEFAULT_TOPIC_PLAN, TopicPlan, ensure_infrastructure
from shared.embedded.store import ReadOnlyIdentity, SeaweedStore, WeedPorts
from shared.errors import EmbeddedStackError
from shared.lifecycle import StartStopContext
from shared.settings import Settings

# Tansu holds JoinGroup for about half the session timeout: 6 s keeps joins near 3 s,
# and a crashed member is noticed after 6 s instead of 30.
EMBEDDED_KAFKA_OVERRIDES: dict[str, object] = {
    "kafka_idempotence": False,  # Tansu has no InitProducerId
    "kafka_session_timeout_ms": 6_000,
    "kafka_heartbeat_interval_ms": 1_000,
}

#: A development stack's receivers are on this machine: webhooks may reach loopback and
#: private addresses over plain http (production refuses both: docs/security.md).
EMBEDDED_WEBHOOK_OVERRIDES: dict[str, object] = {
    "webhook_allow_private": True,
    "webhook_allow_http": True,
}

PRESIGN_ACCESS_KEY = "usage-export-presign"
#: The store's admin keys when the base settings have none (the services' default is the
#: default AWS credential chain, which a local store does not have).
DEV_S3_KEYS: dict[str, object] = {
    "s3_access_key": SecretStr("usage-dev"),
    "s3_secret_key": SecretStr("usage-dev-secret"),
}


def with_store_keys(settings: Settings) -> Settings:
    """``settings``, with the dev keys of :data:`DEV_S3_KEYS` if it has no S3 key pair."""
    if settings.s3_access_key is not None and settings.s3_secret_key is not None:
        return settings
    return settings.model_copy(update=DEV_S3_KEYS)


def presign_identity(settings: Settings) -> ReadOnlyIdentity:
    """The read-only identity that signs download URLs: the settings' presign keys, or
    ``usage-export-presign`` with a secret derived from the main secret key (HMAC-SHA-256:
    stable across restarts, so URLs signed before one keep working, and it reveals nothing
    of the main key)."""
    if settings.s3_presign_access_key is not None and settings.s3_presign_secret_key is not None:
        access_key = settings.s3_presign_access_key.get_secret_value()
        secret_key = settings.s3_presign_secret_key.get_secret_value()
    else:
        main = plain_secret(with_store_keys(settings).s3_secret_key).encode()
        access_key = PRESIGN_ACCESS_KEY
        secret_key = hmac.new(main, b"usage-export presign v1", hashlib.sha256).hexdigest()
    return ReadOnlyIdentity(access_key, secret_key, settings.exports_bucket)


def plain_secret(secret: SecretStr | None) -> str:
    if secret is None:  # with_store_keys gave every stack a key pair
        raise EmbeddedStackError("the embedded store needs an S3 key pair")
    return secret.get_secret_value()


class EmbeddedStack(StartStopContext):
    """Tansu + SeaweedFS as child processes, on loopback ports, under ``data_dir``.

    ``kafka_port`` / ``s3_port`` of 0 pick free ports (tests); others must be free
    (``up``). ``settings`` is the base for everything the stack does not decide itself:
    keys, names, partition counts. ``start()`` and ``stop()`` are idempotent, and a
    failed or cancelled ``start()`` stops whatever it had started.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        kafka_port: int = 0,
        s3_port: int = 0,
        settings: Settings | None = None,
        topic_plan: TopicPlan = DEFAULT_TOPIC_PLAN,
        startup_timeout_s: float = 60.0,
        store_grace_s: float = 2.0,
    ) -> None:
        self.data_dir = data_dir.absolute()
        self._kafka_port = kafka_port
        self._s3_port = s3_port
        self._base = with_store_keys(settings if settings is not None else Settings())
        self._plan = topic_plan
        self._startup_timeout_s = startup_timeout_s
        self._store_grace_s = store_grace_s
        self._broker: TansuBroker | None = None
        self._store: SeaweedStore | None = None
        self._settings: Settings | None = None
        self._lock_fd: int | None = None

    # ---- what callers use -----------------------------------------------------------
    @property
    def settings(self) -> Settings:
        if self._settings is None:
            raise EmbeddedStackError("the embedded stack is not running")
        return self._settings

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    def env(self) -> dict[str, str]:
        """The ``USAGE_*`` variables that reach this stack from another process."""
        return stack_env(self.settings)

    def server_pids(self) -> dict[str, int]:
        """Process ids of the running servers, by name (``tansu``, ``weed``)."""
        servers = [server.process for server in (self._broker, self._store) if server]
        return {
            process.name: process.pid
            for process in servers
            if process.pid is not None and process.running
        }

    async def watch(self, interval_s: float = 0.5) -> str:
        """Return once a server has exited on its own, saying which and why (log tail).

        Runs until then, so callers race it against their own work and cancel it.
        """
        while True:
            for server in (self._broker, self._store):
                process = server.process if server is not None else None
                if process is not None and process.returncode is not None:
                    return (
                        f"{process.name} exited unexpectedly (status {process.returncode}); "
                        f"log {process.log_path}:\n{process.log_tail()}"
                    )
            await asyncio.sleep(interval_s)

    # ---- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        if self._settings is not None:
            return
        self._lock_data_dir()
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Store first, then broker (reverse start order); releases the data dir."""
        self._settings = None
        store, broker = self._store, self._broker
        self._store = self._broker = None
        try:
            if store is not None:
                await store.stop()
        finally:
            if broker is not None:
                await broker.stop()
            self._unlock_data_dir()

    # ---- internals ----------------------------------------------------------------------
    async def _start(self) -> None:
        deadline = time.monotonic() + self._startup_timeout_s
        tansu, weed = locate_tansu(), locate_weed()  # fail before spawning anything
        if self._kafka_port:
            require_free_port(self._kafka_port, "Kafka broker")
        if self._s3_port:
            require_free_port(self._s3_port, "S3 store")
        explicit = {self._kafka_port, self._s3_port}
        spare = iter([port for port in free_ports(10) if port not in explicit])
        kafka_port = self._kafka_port or next(spare)
        weed_ports = WeedPorts(self._s3_port or next(spare), *(next(spare) for _ in range(7)))

        self._broker = TansuBroker(tansu, port=kafka_port, log_path=self.log_dir / "tansu.log")
        secrets = self._base.s3_access_key, self._base.s3_secret_key
        presign = presign_identity(self._base)
        self._store = SeaweedStore(
            weed,
            root=self.data_dir / "seaweedfs",
            ports=weed_ports,
            access_key=plain_secret(secrets[0]),
            secret_key=plain_secret(secrets[1]),
            read_only=presign,
            log_path=self.log_dir / "seaweedfs.log",
            grace_s=self._store_grace_s,
        )
        self._broker.start()
        self._store.start()

        settings = self._base.model_copy(
            update={
                "kafka_bootstrap": self._broker.bootstrap,
                "s3_endpoint": self._store.endpoint,
                "s3_presign_access_key": SecretStr(presign.access_key),
                "s3_presign_secret_key": SecretStr(presign.secret_key),
                **EMBEDDED_KAFKA_OVERRIDES,
                **EMBEDDED_WEBHOOK_OVERRIDES,
            }
        )
        await self._broker.wait_ready(self._remaining(deadline))
        await self._store.wait_ready(settings, self._remaining(deadline))
        try:
            await ensure_infrastructure(settings, self._plan, timeout_s=self._remaining(deadline))
        except EmbeddedStackError:
            raise
        except Exception as exc:  # aiokafka/botocore errors: one error type for callers
            raise EmbeddedStackError(f"creating topics and buckets failed: {exc!r}") from exc
        self._settings = settings

    @staticmethod
    def _remaining(deadline: float) -> float:
        return max(1.0, deadline - time.monotonic())

    def _lock_data_dir(self) -> None:
        """One stack per data dir: two SeaweedFS servers on one directory corrupt it.

        The data dir is the owner's alone (0700): it holds the store's data and keys,
        usage.env and the logs.
        """
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        descriptor = os.open(self.data_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise EmbeddedStackError(
                f"{self.data_dir} is in use by another embedded stack "
                f"(is 'usage-export up' already running there?)"
            ) from None
        self._lock_fd = descriptor

    def _unlock_data_dir(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None
