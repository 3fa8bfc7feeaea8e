"""Topics and buckets the services expect, created idempotently on any broker and store.

Used by ``usage-export up`` on the embedded servers and by the test fixtures on either
the embedded servers or containers, so it takes nothing but :class:`Settings`.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from botocore.exceptions import BotoCoreError, ClientError

from shared.adapters.kafka_connection import connection_options
from shared.embedded.s3client import open_s3_client
from shared.errors import EmbeddedStackError
from shared.settings import Settings

_TOPIC_ALREADY_EXISTS = 36
_BUCKET_EXISTS = {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}
_WRITE_PROBE_KEY = ".usage-export-write-probe"
WEEK_MS = 7 * 24 * 3600 * 1000
_TAG = re.compile(r"[a-z0-9]{1,24}")
#: Configs every topic of the project is created with, besides its retention.
TOPIC_TIME_CONFIGS: dict[str, str] = {"message.timestamp.type": "LogAppendTime"}


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int

    @property
    def configs(self) -> dict[str, str]:
        # Set explicitly: some brokers (Tansu) describe only configs given at creation.
        # LogAppendTime: retention counts from when the broker appended a record, never
        # from a timestamp a producer chose (a back-fill stamped with `occurred_at` would
        # otherwise expire before ingest reads it). Tansu 0.6 stores it but does not apply
        # it (tests/integration/test_topic_time.py; docs/operations.md, "Topic time").
        return {"retention.ms": str(self.retention_ms), **TOPIC_TIME_CONFIGS}


@dataclass(frozen=True, slots=True)
class TopicPlan:
    """Sizes of the topics :class:`Settings` has no knob for, and their retention.

    Completions default to as many partitions as export requests; dead-letter topics
    are low-volume operator queues, one partition keeps them in arrival order.
    """

    completions_partitions: int | None = None
    dlq_partitions: int = 1
    retention_ms: int = WEEK_MS
    replication_factor: int = 1


DEFAULT_TOPIC_PLAN = TopicPlan()


def topic_specs(settings: Settings, plan: TopicPlan = DEFAULT_TOPIC_PLAN) -> list[TopicSpec]:
    """The five topics of contract §1 with their partition counts."""
    completions = plan.completions_partitions or settings.requests_partitions
    sizes = [
        (settings.topic_events, settings.events_partitions),
        (settings.topic_events_dlq, plan.dlq_partitions),
        (settings.topic_export_requests, settings.requests_partitions),
        (settings.topic_export_completions, completions),
        (settings.topic_export_requests_dlq, plan.dlq_partitions),
    ]
    return [TopicSpec(name, partitions, plan.retention_ms) for name, partitions in sizes]


def isolated_settings(settings: Settings, tag: str) -> Settings:
    """``settings`` with every topic, bucket and consumer group suffixed by ``tag``.

    Lets many tests (or tenants) share one broker and store without seeing each
    other's data or group members.  ``tag`` must be lower-case alphanumeric so the
    names stay valid bucket names.
    """
    if not _TAG.fullmatch(tag):
        raise ValueError(f"tag must be lower-case alphanumeric, got {tag!r}")
    topics = (
        "topic_events",
        "topic_events_dlq",
        "topic_export_requests",
        "topic_export_requests_dlq",
        "topic_export_completions",
    )
    buckets = ("aggregates_bucket", "exports_bucket")
    groups = ("ingest_group", "exporter_group", "delivery_group")
    update: dict[str, object] = {name: f"{getattr(settings, name)}.{tag}" for name in topics}
    update |= {name: f"{getattr(settings, name)}-{tag}" for name in (*buckets, *groups)}
    too_long = [update[name] for name in buckets if len(str(update[name])) > 63]
    if too_long:
        raise ValueError(f"bucket names longer than 63 characters: {too_long}")
    return settings.model_copy(update=update)


async def ensure_topics(
    settings: Settings,
    specs: Sequence[TopicSpec],
    *,
    replication_factor: int = 1,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the topics that do not exist yet; returns the names created.

    Existing topics are left as they are, even with another partition count: changing
    partitions would move keys between partitions under running consumers.
    """
    admin = AIOKafkaAdminClient(
        **connection_options(settings), request_timeout_ms=int(timeout_s * 1000)
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        if not missing:
            return []
        response = await admin.create_topics(
            [
                NewTopic(spec.name, spec.partitions, replication_factor, topic_configs=spec.configs)
                for spec in missing
            ],
            timeout_ms=int(timeout_s * 1000),
        )
    finally:
        await admin.close()
    failures = [
        f"{error[0]}: error {error[1]} {error[2] or ''}".strip()
        for error in response.topic_errors
        if error[1] not in (0, _TOPIC_ALREADY_EXISTS)
    ]
    if failures:
        raise EmbeddedStackError(f"could not create topics: {'; '.join(failures)}")
    return [spec.name for spec in missing]


async def ensure_buckets(settings: Settings, names: Iterable[str]) -> list[str]:
    """Create the buckets that do not exist yet; returns the names created."""
    created: list[str] = []
    async with open_s3_client(settings, timeout_s=10.0) as client:
        for name in names:
            try:
                await client.create_bucket(Bucket=name)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in _BUCKET_EXISTS:
                    raise EmbeddedStackError(f"could not create bucket {name!r}: {exc}") from exc
            else:
                created.append(name)
    return created


async def await_writable(settings: Settings, bucket: str, *, timeout_s: float = 30.0) -> None:
    """Wait until an object can be written to ``bucket`` (then delete it again).

    SeaweedFS answers ListBuckets before its volume server has registered with the
    master; until then every write fails. Writing once also grows the bucket's volume
    now instead of during the services' first flush.
    """
    deadline = time.monotonic() + timeout_s
    async with open_s3_client(settings, timeout_s=10.0) as client:
        while True:
            try:
                await client.put_object(Bucket=bucket, Key=_WRITE_PROBE_KEY, Body=b"ok")
                await client.delete_object(Bucket=bucket, Key=_WRITE_PROBE_KEY)
                return
            except (BotoCoreError, ClientError) as exc:
                if time.monotonic() >= deadline:
                    raise EmbeddedStackError(
                        f"bucket {bucket!r} did not accept writes within {timeout_s:.0f} s: {exc}"
                    ) from exc
            await asyncio.sleep(0.2)


async def ensure_infrastructure(
    settings: Settings, plan: TopicPlan = DEFAULT_TOPIC_PLAN, *, timeout_s: float = 30.0
) -> None:
    """Topics and both buckets of ``settings``, ready to be written."""
    await ensure_topics(
        settings,
        topic_specs(settings, plan),
        replication_factor=plan.replication_factor,
        timeout_s=timeout_s,
    )
    buckets = [settings.aggregates_bucket, settings.exports_bucket]
    await ensure_buckets(settings, buckets)
    await asyncio.gather(
        *(await_writable(settings, bucket, timeout_s=timeout_s) for bucket in buckets)
    )
