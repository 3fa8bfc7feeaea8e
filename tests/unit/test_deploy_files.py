"""The deployment files parse and agree with each other and with the settings.

No Docker engine is needed: the YAML is parsed and the essentials are asserted (ports
that match the metrics settings, every USAGE_ variable a real setting). The Kubernetes
files are rendered and schema-checked in tests/unit/test_deploy_k8s.py. Linters that
need binaries (hadolint, docker compose config) are run by hand; see docs/operations.md.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.embedded.provision import topic_specs
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"

SERVICES = ("ingest", "compactor", "exporter", "api", "delivery", "scheduler")


def setting_default(name: str) -> Any:
    return Settings.model_fields[name].default


def metrics_port(service: str) -> int:
    return int(setting_default(f"{service}_metrics_port"))


def assert_usage_variables(env: dict[str, Any], where: str) -> None:
    """Every USAGE_ name is a setting and its value is valid for it."""
    known = set(Settings.model_fields)
    values = {}
    for name, value in env.items():
        assert name.startswith("USAGE_"), f"{where}: {name}"
        field = name.removeprefix("USAGE_").lower()
        assert field in known, f"{where}: {name} is not a setting"
        values[field] = value
    Settings.model_validate(values)  # raises on a value the service would refuse


# ---- Dockerfile -------------------------------------------------------------------------
def test_dockerfile_builds_a_non_root_image_of_the_cli() -> None:
    text = DOCKERFILE.read_text()
    instructions = re.findall(r"^(FROM|USER|ENTRYPOINT|CMD|EXPOSE|HEALTHCHECK)\b(.*)$", text, re.M)
    by_name: dict[str, list[str]] = {}
    for name, rest in instructions:
        by_name.setdefault(name, []).append(rest.strip())
    assert all(base.startswith("python:3.11.") for base in by_name["FROM"])
    (user,) = by_name["USER"]
    assert not user.startswith(("root", "0"))
    assert by_name["ENTRYPOINT"] == ['["tini", "--", "usage-export"]']  # test_deploy_image.py
    assert by_name["CMD"][-1] == '["ingest"]'
    exposed = {str(metrics_port(s)) for s in SERVICES} | {str(setting_default("api_port"))}
    assert set(by_name["EXPOSE"][0].split()) == exposed
    assert "/health/ready" in text.split("HEALTHCHECK", 1)[1]
    assert "[embedded]" not in text
    assert "-r requirements.lock" in text  # layers and lock: tests/unit/test_deploy_image.py


# ---- docker-compose -----------------------------------------------------------------------
@pytest.mark.parametrize("service", SERVICES)
def test_compose_services_run_the_image_against_kafka_and_minio(service: str) -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    defined = services[service]
    assert defined["image"] == "usage-export:dev"  # built once: tests/unit/test_deploy_compose.py
    assert defined["command"] == [service]
    env = defined["environment"]
    assert_usage_variables(env, f"compose {service}")
    kafka_host = env["USAGE_KAFKA_BOOTSTRAP"].split(":")[0]
    s3_host = env["USAGE_S3_ENDPOINT"].removeprefix("http://").split(":")[0]
    assert {kafka_host, s3_host} <= set(services)
    assert (
        "INTERNAL://kafka:29092" in services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    )
    port = metrics_port(service)
    assert int(env[f"USAGE_{service.upper()}_METRICS_PORT"]) == port
    assert f"127.0.0.1:{port}:{port}" in defined["ports"]
    assert f"127.0.0.1:{port}/health/ready" in " ".join(defined["healthcheck"]["test"])
    assert set(defined["depends_on"]) == {"image", "kafka-init", "minio-init"}
    assert defined["profiles"] == ["services"]  # `docker compose up` stays infra-only


def test_compose_creates_the_topics_as_up_does() -> None:
    """kafka-init: the same topics, partitions and configs (retention, LogAppendTime)."""
    script = yaml.safe_load(COMPOSE.read_text())["services"]["kafka-init"]["command"][0]
    flags = re.findall(r"--config (\S+)=(\S+)", script)
    created = dict(re.findall(r"^\s*create (\S+) (\d+)$", script, re.MULTILINE))
    specs = topic_specs(Settings())
    assert created == {spec.name: str(spec.partitions) for spec in specs}
    assert all(dict(flags) == spec.configs for spec in specs)
    assert ("message.timestamp.type", "LogAppendTime") in flags


def test_the_api_is_served_on_its_port_in_compose() -> None:
    """(Kubernetes: tests/unit/test_deploy_k8s.py.)"""
    api_port = int(setting_default("api_port"))
    compose_api = yaml.safe_load(COMPOSE.read_text())["services"]["api"]
    assert f"127.0.0.1:{api_port}:{api_port}" in compose_api["ports"]
    assert compose_api["environment"]["USAGE_API_HOST"] == "0.0.0.0"
