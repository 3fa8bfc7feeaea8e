"""Create the topics and buckets usage-export expects, idempotently (the Kubernetes Job).

Run by the ``usage-export-provision`` Job with the project's own image (``python
/opt/usage-export-provision/provision.py``), so the topics are those of
``usage-export up``, the test fixtures and docker-compose (``topic_specs``: partitions
from ``USAGE_EVENTS_PARTITIONS`` / ``USAGE_REQUESTS_PARTITIONS``, ``retention.ms`` 7
days, ``message.timestamp.type=LogAppendTime``) and the broker connection is the
services' (``USAGE_KAFKA_*``, TLS and SASL included). Existing topics and buckets are
left as they are. Settings of its own (not ``USAGE_*``, which belong to the services):

- ``PROVISION_REPLICATION_FACTOR``: replicas of each new topic (default 3).
- ``PROVISION_BUCKETS``: ``true`` (default) creates the two buckets; ``false`` when they
  are made elsewhere (Terraform): the script then only checks that they exist.

Exit 0 when everything exists afterwards, 1 otherwise (the error on one line).
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass

from botocore.exceptions import ClientError

from shared.embedded.provision import TopicPlan, ensure_topics, topic_specs
from shared.embedded.s3client import open_s3_client
from shared.settings import Settings

_BUCKET_EXISTS = {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}
#: S3's default region, the one region whose CreateBucket takes no location constraint.
_DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True, slots=True)
class Plan:
    replication_factor: int
    create_buckets: bool

    @classmethod
    def from_env(cls, env: dict[str, str]) -> Plan:
        factor = int(env.get("PROVISION_REPLICATION_FACTOR", "3"))
        if factor < 1:
            raise ValueError(f"PROVISION_REPLICATION_FACTOR must be at least 1, got {factor}")
        flag = env.get("PROVISION_BUCKETS", "true").strip().lower()
        if flag not in ("true", "false"):
            raise ValueError(f"PROVISION_BUCKETS must be true or false, got {flag!r}")
        return cls(replication_factor=factor, create_buckets=flag == "true")


def create_bucket_arguments(bucket: str, region: str) -> dict[str, object]:
    """CreateBucket's arguments: outside us-east-1, S3 wants the region named."""
    arguments: dict[str, object] = {"Bucket": bucket}
    if region != _DEFAULT_REGION:
        arguments["CreateBucketConfiguration"] = {"LocationConstraint": region}
    return arguments


async def ensure_bucket(settings: Settings, bucket: str, *, create: bool) -> str:
    """``exists``, ``created``; raises when it is missing and may not be created."""
    async with open_s3_client(settings, timeout_s=10.0) as client:
        try:
            await client.head_bucket(Bucket=bucket)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status != 404:
                raise
        else:
            return "exists"
        if not create:
            raise RuntimeError(f"bucket {bucket!r} does not exist (PROVISION_BUCKETS=false)")
        try:
            await client.create_bucket(**create_bucket_arguments(bucket, settings.s3_region))  # type: ignore[arg-type]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in _BUCKET_EXISTS:
                raise
            return "exists"
        return "created"


async def provision(settings: Settings, plan: Plan) -> list[str]:
    """What was done, one line per topic and bucket."""
    specs = topic_specs(settings, TopicPlan(replication_factor=plan.replication_factor))
    created = set(await ensure_topics(settings, specs, replication_factor=plan.replication_factor))
    lines = [
        f"topic {spec.name}: {'created' if spec.name in created else 'exists'}"
        f" ({spec.partitions} partitions)"
        for spec in specs
    ]
    for bucket in (settings.aggregates_bucket, settings.exports_bucket):
        outcome = await ensure_bucket(settings, bucket, create=plan.create_buckets)
        lines.append(f"bucket {bucket}: {outcome}")
    return lines


def main() -> int:
    try:
        settings = Settings()
        plan = Plan.from_env(dict(os.environ))
        for line in asyncio.run(provision(settings, plan)):
            print(line, flush=True)
    except Exception as exc:  # noqa: BLE001 - one line for the Job's log, not a traceback
        print(f"provision failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
