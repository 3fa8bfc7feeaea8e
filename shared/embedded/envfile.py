"""The ``USAGE_*`` environment that reaches an embedded stack, and ``usage.env`` (contract §7).

Only what another process needs to talk to this broker and store goes into the file:
addresses, keys, names, and the knobs the embedded broker requires. Service tuning stays
with whoever runs the service, so the file never pins defaults.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from pathlib import Path

from shared.settings import Settings, settings_env

STACK_FIELDS = (
    "kafka_bootstrap",
    "s3_endpoint",
    "s3_access_key",
    "s3_secret_key",
    "s3_presign_access_key",
    "s3_presign_secret_key",
    "s3_region",
    "aggregates_bucket",
    "exports_bucket",
    "topic_events",
    "topic_events_dlq",
    "topic_export_requests",
    "topic_export_requests_dlq",
    "topic_export_completions",
    # Tansu has no InitProducerId, and holds JoinGroup for half the session timeout.
    "kafka_idempotence",
    "kafka_session_timeout_ms",
    "kafka_heartbeat_interval_ms",
    "events_partitions",
    "requests_partitions",
    # Webhook receivers of a development stack run on this machine.
    "webhook_allow_private",
    "webhook_allow_http",
)


def stack_env(settings: Settings) -> dict[str, str]:
    """``USAGE_NAME -> value`` for :data:`STACK_FIELDS` that are set, formatted as
    Settings reads them."""
    everything = settings_env(settings)
    names = (f"USAGE_{name.upper()}" for name in STACK_FIELDS)
    return {key: everything[key] for key in names if key in everything}


def render_env_file(env: Mapping[str, str]) -> str:
    """One ``NAME=value`` a line; values are shell-quoted only when they need it, so the
    file works with ``set -a; . usage.env`` and, for plain values, ``docker --env-file``."""
    return "".join(f"{name}={shlex.quote(value)}\n" for name, value in env.items())


def write_env_file(path: Path, env: Mapping[str, str]) -> None:
    """Write atomically and owner-readable only (the file holds the S3 secret key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(render_env_file(env))
    os.replace(partial, path)
