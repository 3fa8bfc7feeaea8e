"""One settings model, read from ``USAGE_*`` environment variables (contract §6)."""

from __future__ import annotations

from functools import lru_cache
from typing import Final, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The oldest event ingest accepts is from the UTC day 12 calendar months (at most 366
#: days) and one day before today (``services/ingest/validation.py::AcceptedRange``);
#: the janitor keeps every day from ``today - (retention + margin)`` days on. A day
#: deleted while its events are still accepted would lose its dedup set, and a
#: re-produced event would count twice: retention + margin must cover the window.
INGEST_ACCEPTANCE_DAYS: Final = 366 + 1


class Settings(BaseSettings):
    """Every knob of the services. Frozen: read once at start-up, passed down explicitly."""

    model_config = SettingsConfigDict(env_prefix="USAGE_", frozen=True, extra="ignore")

    # --- contract §6 -------------------------------------------------------------------
    kafka_bootstrap: str = "127.0.0.1:9092"
    s3_endpoint: str = "http://127.0.0.1:8333"
    # Unset (both): the default credential chain (AWS_* variables, web identity such as
    # IRSA, container or instance profile). `usage-export up` writes its dev keys.
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    s3_region: str = "us-east-1"
    aggregates_bucket: str = "usage-aggregates"
    exports_bucket: str = "usage-exports"
    topic_events: str = "usage.events"
    topic_events_dlq: str = "usage.events.dlq"
    topic_export_requests: str = "usage.export-requests"
    topic_export_requests_dlq: str = "usage.export-requests.dlq"
    topic_export_completions: str = "usage.export-completions"
    signed_url_ttl_s: int = Field(default=3600, ge=1, le=7 * 24 * 3600)
    # Keys of a read-only identity that signs the download URLs (unset: the keys above).
    # `usage-export up` creates one that may only read the exports bucket.
    s3_presign_access_key: SecretStr | None = None
    s3_presign_secret_key: SecretStr | None = None
    # The endpoint download URLs are signed for, as their users reach the store (SigV4
    # signs the host: a URL cannot be re-pointed afterwards). Unset: s3_endpoint.
    s3_presign_endpoint: str | None = None

    # --- Kafka -------------------------------------------------------------------------
    # Idempotent producers need InitProducerId; real Kafka has it, the embedded Tansu
    # broker does not.  `usage-export up` writes USAGE_KAFKA_IDEMPOTENCE=false to usage.env.
    kafka_idempotence: bool = True
    kafka_session_timeout_ms: int = Field(default=30_000, ge=1_000)
    kafka_heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    kafka_max_poll_interval_ms: int = Field(default=300_000, ge=1_000)
    # Backoff of the services' own retries of broker sends (the store has s3_retry_*).
    kafka_retry_base_s: float = Field(default=0.2, gt=0)
    kafka_retry_max_s: float = Field(default=5.0, gt=0)
    #: How long a service waits at start for the broker and the store to answer (pods start
    #: before their dependencies are ready); not ready meanwhile, then it exits.
    startup_wait_s: float = Field(default=300.0, ge=0)
    events_partitions: int = Field(default=12, ge=1)
    requests_partitions: int = Field(default=3, ge=1)
    ingest_group: str = "usage-ingest"
    exporter_group: str = "usage-exporter"
    # Security of every broker connection (shared/adapters/kafka_connection.py); the
    # combinations are checked below. OAUTHBEARER is refused: see docs/operations.md.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    # PEM files; no CA file: the system's CAs verify the broker.
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None

    # --- ingest ------------------------------------------------------------------------
    # One Field per setting with its bounds, spelled out: README's settings table mirrors
    # them, and a repeated shape here is the point (one line a knob).
    ingest_batch_max_records: int = Field(default=20_000, ge=1)
    ingest_flush_interval_s: float = Field(default=2.0, gt=0)
    # While catching up a backlog (full fetches, or a lag of a batch) freshness is moot and
    # every flush writes a file per touched day: flush less often, bounded by the cap.
    ingest_backlog_flush_interval_s: float = Field(default=10.0, gt=0)
    ingest_max_pending_facts: int = Field(default=200_000, ge=1)
    ingest_flush_concurrency: int = Field(default=32, ge=1)
    # Bound of the (estimated) megabytes the workspace writers hold: each workspace's id
    # index (12 bytes an event of the retention), recent ids and pending rows. Writers with
    # nothing pending are dropped beyond it, least recently used first; the process and
    # the commit buffers come on top (BENCHMARKS.md has measured peaks).
    ingest_cache_max_mb: int = Field(default=160, ge=8)
    max_event_bytes: int = Field(default=1024 * 1024, ge=1024)
    future_tolerance_s: int = Field(default=24 * 3600, ge=0)
    retention_days: int = Field(default=366, ge=1)
    retention_margin_days: int = Field(default=31, ge=0)

    # --- compactor (docs/operations.md, "Compactor") ------------------------------------
    # The full pass over every workspace (retention and vacuum included).
    janitor_interval_s: float = Field(default=3600.0, gt=0)
    # How often the compactor looks for workspaces with new commits and gets their small
    # files compacted, their closed months merged and rolled up.
    compaction_interval_s: float = Field(default=30.0, gt=0)
    # This replica's share of the workspaces, "k/n": those whose org id's CRC-32 mod n is k.
    compactor_shard: str = "0/1"
    compactor_metrics_port: int = Field(default=9469, ge=0, le=65535)

    # --- observability -------------------------------------------------------------------
    # /metrics, /health/live, /health/ready. Port 0 binds a free port (tests); two ports
    # because `usage-export up` runs both services in one process.
    metrics_host: str = "127.0.0.1"
    ingest_metrics_port: int = Field(default=9464, ge=0, le=65535)
    exporter_metrics_port: int = Field(default=9465, ge=0, le=65535)
    api_metrics_port: int = Field(default=9466, ge=0, le=65535)
    # auto: JSON lines when stderr is not a terminal, readable text when it is.
    log_format: Literal["auto", "json", "text"] = "auto"

    # --- S3 ------------------------------------------------------------------------------
    s3_max_attempts: int = Field(default=8, ge=1)
    s3_retry_base_s: float = Field(default=0.2, gt=0)
    s3_retry_max_s: float = Field(default=5.0, gt=0)
    s3_connect_timeout_s: float = Field(default=5.0, gt=0)
    s3_read_timeout_s: float = Field(default=30.0, gt=0)

    # --- exporter ------------------------------------------------------------------------
    export_concurrency: int = Field(default=4, ge=1)
    export_deadline_s: float = Field(default=120.0, gt=0)
    export_part_size_bytes: int = Field(default=8 * 1024 * 1024, ge=5 * 1024 * 1024)

    # --- scheduler (docs/operations.md, "Scheduled exports") --------------------------------
    # How often the scheduler lists the schedules and publishes the periods that are due.
    scheduler_interval_s: float = Field(default=60.0, gt=0)
    # A period is due this long after its end (ingest catches up with its last events).
    schedule_grace_s: float = Field(default=7200.0, ge=0)
    scheduler_metrics_port: int = Field(default=9468, ge=0, le=65535)

    # --- HTTP API (docs/api.md) ------------------------------------------------------------
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8080, ge=0, le=65535)
    # The same routes again under this prefix, for dedicated deployments ("" = none).
    api_path_prefix: str = Field(default="/api/public", pattern=r"^(/[A-Za-z0-9._~-]+)*$")
    # How long a request waits for its completion before it is answered 202 (pending).
    api_timeout_s: float = Field(default=25.0, gt=0, le=600)
    api_rate_limit_per_min: int = Field(default=500, ge=1)
    # A verified (or refused) key is remembered this long: a revoke takes effect within it.
    api_key_cache_ttl_s: float = Field(default=30.0, ge=0)
    # Requests waiting for a completion at once; beyond it new ones are answered 503.
    api_max_waiting: int = Field(default=10_000, ge=1)
    # The /json variant returns rows inline up to these bounds, else 413 (use the file).
    api_json_max_rows: int = Field(default=10_000, ge=1)
    api_json_max_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    # Slow clients (services/api/server.py): a connection must send a whole request head
    # within api_header_timeout_s of opening or of its previous answer, else it is closed
    # (idle keep-alive connections too: keep a proxy's upstream keep-alive below it); a
    # body must arrive whole within api_body_timeout_s, else 408; beyond
    # api_max_connections open at once a new connection is answered 503 and closed.
    api_header_timeout_s: float = Field(default=15.0, gt=0, le=3600)
    api_body_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    api_max_connections: int = Field(default=256, ge=1)
    # Server-side secret of the API keys' HMAC hashes; empty: derived from the S3 secret
    # key (services/api/keys.py::pepper_of). Set it in production.
    api_key_pepper: SecretStr = SecretStr("")
    # Failed key checks (unknown key, wrong secret) allowed per key id and per client
    # address a minute, as a burst; beyond them 429 before any store read or hash.
    api_auth_failures_per_key_per_min: int = Field(default=10, ge=1)
    api_auth_failures_per_client_per_min: int = Field(default=30, ge=1)
    # Key checks (store read and hash) running at once; more wait their turn.
    api_max_key_checks: int = Field(default=8, ge=1)
    # Export requests of one workspace waiting for their completion at once, per replica;
    # beyond it 429 with Retry-After.
    api_max_exports_per_workspace: int = Field(default=4, ge=1)

    # --- webhooks (docs/operations.md, "Webhook delivery") ---------------------------------
    # Callbacks to loopback, private, link-local and unique-local addresses (never cloud
    # metadata): refused unless this is set (tests and `usage-export up` set it).
    webhook_allow_private: bool = False
    # Plain http callback URLs (https only unless set; `usage-export up` sets it).
    webhook_allow_http: bool = False
    # After `webhooks secret` rotates a workspace's secret the old one signs too this long.
    webhook_secret_overlap_s: float = Field(default=24 * 3600.0, ge=0)
    # A delivery not answered 2xx this long after its first try is dead-lettered.
    webhook_max_age_s: float = Field(default=24 * 3600.0, gt=0)
    # Full-jitter backoff between tries: the n-th failure waits up to min(max, base*2^(n-1)).
    webhook_retry_base_s: float = Field(default=5.0, gt=0)
    webhook_retry_max_s: float = Field(default=3600.0, gt=0)
    webhook_connect_timeout_s: float = Field(default=5.0, gt=0)
    webhook_read_timeout_s: float = Field(default=10.0, gt=0)
    # Resolving a callback's host, at request time (exporter, API) and before each try.
    webhook_dns_timeout_s: float = Field(default=2.0, gt=0)
    # Deliveries in flight at once per delivery replica.
    webhook_concurrency: int = Field(default=16, ge=1)
    # How often a delivery replica looks for pending deliveries that are due.
    webhook_poll_interval_s: float = Field(default=1.0, gt=0)
    delivery_group: str = "usage-delivery"
    delivery_metrics_port: int = Field(default=9467, ge=0, le=65535)

    @field_validator("compactor_shard")
    @classmethod
    def _shard_is_k_of_n(cls, value: str) -> str:
        parse_shard(value)
        return value

    @model_validator(mode="after")
    def _presign_keys_come_in_pairs(self) -> Settings:
        if (self.s3_presign_access_key is None) != (self.s3_presign_secret_key is None):
            raise ValueError(
                "set both USAGE_S3_PRESIGN_ACCESS_KEY and USAGE_S3_PRESIGN_SECRET_KEY, or neither"
            )
        return self

    @model_validator(mode="after")
    def _s3_keys_come_in_pairs(self) -> Settings:
        if (self.s3_access_key is None) != (self.s3_secret_key is None):
            raise ValueError(
                "set both USAGE_S3_ACCESS_KEY and USAGE_S3_SECRET_KEY, or neither "
                "(neither: the default AWS credential chain)"
            )
        return self

    @model_validator(mode="after")
    def _kafka_security_is_complete(self) -> Settings:
        problem = kafka_security_problem(self)
        if problem is not None:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _retention_covers_ingest_acceptance(self) -> Settings:
        kept = self.retention_days + self.retention_margin_days
        if kept < INGEST_ACCEPTANCE_DAYS:
            raise ValueError(
                f"USAGE_RETENTION_DAYS + USAGE_RETENTION_MARGIN_DAYS is {kept} days "
                f"({self.retention_days} + {self.retention_margin_days}); it must be at least "
                f"{INGEST_ACCEPTANCE_DAYS}: ingest accepts events up to 12 months + 1 day old, "
                "and a day deleted before then loses its dedup set, so an event produced "
                "again would be counted twice"
            )
        return self


#: The SASL mechanisms every client here speaks (aiokafka's, configured by settings alone).
KAFKA_SASL_MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def kafka_security_problem(settings: Settings) -> str | None:
    """What is wrong with the ``USAGE_KAFKA_SECURITY_PROTOCOL`` / ``SASL_*`` / ``SSL_*``
    combination, or None. Settings another protocol would ignore are refused, not ignored."""
    protocol = settings.kafka_security_protocol
    sasl = {
        "USAGE_KAFKA_SASL_MECHANISM": settings.kafka_sasl_mechanism,
        "USAGE_KAFKA_SASL_USERNAME": settings.kafka_sasl_username,
        "USAGE_KAFKA_SASL_PASSWORD": settings.kafka_sasl_password,
    }
    ssl = {
        "USAGE_KAFKA_SSL_CAFILE": settings.kafka_ssl_cafile,
        "USAGE_KAFKA_SSL_CERTFILE": settings.kafka_ssl_certfile,
        "USAGE_KAFKA_SSL_KEYFILE": settings.kafka_ssl_keyfile,
    }
    if protocol.startswith("SASL_"):
        missing = [name for name, value in sasl.items() if not value]
        if missing:
            return f"USAGE_KAFKA_SECURITY_PROTOCOL={protocol} needs {', '.join(missing)}"
        mechanism = settings.kafka_sasl_mechanism
        if mechanism not in KAFKA_SASL_MECHANISMS:
            return (
                f"USAGE_KAFKA_SASL_MECHANISM={mechanism} is not supported: use one of "
                f"{', '.join(KAFKA_SASL_MECHANISMS)} (OAUTHBEARER and GSSAPI need code-level "
                "token or Kerberos providers; see docs/operations.md)"
            )
    elif stray := [name for name, value in sasl.items() if value]:
        return f"{', '.join(stray)} set, but USAGE_KAFKA_SECURITY_PROTOCOL={protocol} has no SASL"
    if not protocol.endswith("SSL") and (stray := [name for name, value in ssl.items() if value]):
        return f"{', '.join(stray)} set, but USAGE_KAFKA_SECURITY_PROTOCOL={protocol} has no TLS"
    if settings.kafka_ssl_keyfile and not settings.kafka_ssl_certfile:
        return "USAGE_KAFKA_SSL_KEYFILE needs USAGE_KAFKA_SSL_CERTFILE (the client certificate)"
    return None


def parse_shard(text: str) -> tuple[int, int]:
    """``"k/n"`` (``USAGE_COMPACTOR_SHARD``) as ``(k, n)``, with ``0 <= k < n``; a
    ValueError naming the setting and what it takes otherwise."""
    index, slash, count = text.strip().partition("/")
    if slash and index.isdecimal() and count.isdecimal() and int(index) < int(count):
        return int(index), int(count)
    raise ValueError(
        f"USAGE_COMPACTOR_SHARD={text!r} is not a shard: write k/n, this replica's number k "
        "and the number of compactor replicas n, with 0 <= k < n (e.g. 0/1, or 0/3, 1/3 "
        "and 2/3 for three replicas)"
    )


@lru_cache(maxsize=1)
def load_settings() -> Settings:
    """Settings from the environment, read once per process."""
    return Settings()


def settings_env(settings: Settings) -> dict[str, str]:
    """The ``USAGE_*`` environment that reproduces ``settings`` in another process."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:  # unset optional: absent, not the string "None"
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, bool):
            value = "true" if value else "false"
        env[f"USAGE_{name.upper()}"] = str(value)
    return env
