"""The Kubernetes provisioning Job's script (deploy/k8s/base/provision/provision.py) run as
the Job runs it, with the services' USAGE_* settings, against the real broker and store:
it creates the five topics (as `usage-export up` does: partitions, LogAppendTime) and
both buckets, a second run changes nothing, and with PROVISION_BUCKETS=false a missing
bucket fails the Job."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from shared.embedded import isolated_settings
from shared.embedded.provision import topic_specs
from shared.embedded.s3client import open_s3_client
from shared.settings import Settings, settings_env

SCRIPT = (
    Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "base" / "provision" / "provision.py"
)


def run_job(settings: Settings, **extra: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | settings_env(settings) | {"PROVISION_REPLICATION_FACTOR": "1"} | extra
    return subprocess.run(
        [sys.executable, str(SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_the_job_creates_topics_and_buckets_once(settings: Settings) -> None:
    fresh = isolated_settings(settings, uuid.uuid4().hex[:12])
    specs = topic_specs(fresh)

    first = run_job(fresh)
    assert first.returncode == 0, first.stderr
    buckets = (fresh.aggregates_bucket, fresh.exports_bucket)
    assert first.stdout.splitlines() == [
        f"topic {spec.name}: created ({spec.partitions} partitions)" for spec in specs
    ] + [f"bucket {bucket}: created" for bucket in buckets]

    admin = AIOKafkaAdminClient(bootstrap_servers=fresh.kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([spec.name for spec in specs])
        partitions = {topic["topic"]: len(topic["partitions"]) for topic in described}
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, spec.name) for spec in specs]
        )
    finally:
        await admin.close()
    assert partitions == {spec.name: spec.partitions for spec in specs}
    described = {
        resource[3]: {entry[0]: entry[1] for entry in resource[4]}
        for response in responses
        for resource in response.resources
    }
    for spec in specs:
        assert described[spec.name]["message.timestamp.type"] == "LogAppendTime"
        assert described[spec.name]["retention.ms"] == str(spec.retention_ms)
    async with open_s3_client(fresh) as client:
        for bucket in buckets:
            await client.head_bucket(Bucket=bucket)

    again = run_job(fresh)
    assert again.returncode == 0, again.stderr
    assert all(line.split(": ")[1].startswith("exists") for line in again.stdout.splitlines())


def test_a_missing_bucket_fails_the_job_when_it_may_not_create_it(settings: Settings) -> None:
    fresh = isolated_settings(settings, uuid.uuid4().hex[:12])
    result = run_job(fresh, PROVISION_BUCKETS="false")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("provision failed:")
    assert "PROVISION_BUCKETS=false" in result.stderr
    assert "Traceback" not in result.stderr
