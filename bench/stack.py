"""A fresh embedded stack for a benchmark, and per-run names on it.

The workload topic is produced once; each run gets its own consumer group and buckets
(so it starts from an empty store and offset 0) on the same topic.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from shared.embedded import EmbeddedStack, ensure_infrastructure, isolated_settings
from shared.settings import Settings, settings_env


def new_tag(prefix: str = "b") -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@asynccontextmanager
async def embedded_stack(data_dir: Path | None = None) -> AsyncIterator[EmbeddedStack]:
    """An embedded broker + store in ``data_dir`` (a temporary directory by default,
    removed afterwards); both servers are stopped when the block ends."""
    owned = data_dir is None
    root = Path(tempfile.mkdtemp(prefix="usage-bench-")) if data_dir is None else data_dir
    try:
        async with EmbeddedStack(root) as stack:
            yield stack
    finally:
        if owned:
            shutil.rmtree(root, ignore_errors=True)


async def workload_settings(base: Settings, tag: str) -> Settings:
    """Topics, buckets and groups of their own (suffixed ``tag``), created."""
    settings = isolated_settings(base, tag)
    await ensure_infrastructure(settings)
    return settings


async def run_settings(workload: Settings, tag: str) -> Settings:
    """The workload's topics, with a fresh consumer group and fresh buckets."""
    settings = workload.model_copy(
        update={
            "aggregates_bucket": f"agg-{tag}",
            "exports_bucket": f"exp-{tag}",
            "ingest_group": f"ingest-{tag}",
            "exporter_group": f"exporter-{tag}",
        }
    )
    await ensure_infrastructure(settings)
    return settings


#: Settings a service subprocess must not share with another one on this machine.
_PORT_FIELDS = ("ingest_metrics_port", "exporter_metrics_port", "compactor_metrics_port")


def child_env(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a service subprocess: ours, then the settings' ``USAGE_*``
    (metrics/health ports on free ports, JSON logs), then ``extra``."""
    free = {name: 0 for name in _PORT_FIELDS if name in Settings.model_fields}
    env = settings_env(settings.model_copy(update=free))
    return {**os.environ, **env, "USAGE_LOG_FORMAT": "json", **(extra or {})}
