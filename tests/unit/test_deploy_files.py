"""The deployment files parse and agree with each other and with the settings.

No Docker engine or cluster is needed: the YAML is parsed and the essentials are
asserted (probes on the health endpoints, env from the ConfigMap and Secret, ports that
match the metrics settings, every USAGE_ variable a real setting). Linters that need
binaries (hadolint, kubernetes-validate, docker compose config) are run by hand; see
docs/operations.md.
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
K8S = ROOT / "deploy" / "k8s"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"

SERVICES = ("ingest", "exporter", "api")


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


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


@pytest.fixture(scope="module")
def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in load_all(path):
            found[doc["kind"], doc["metadata"]["name"]] = doc
    return found


def deployment(manifests: dict[tuple[str, str], dict[str, Any]], service: str) -> dict[str, Any]:
    return manifests["Deployment", f"usage-{service}"]


# ---- Dockerfile -------------------------------------------------------------------------
def test_dockerfile_builds_a_non_root_image_of_the_cli() -> None:
    text = DOCKERFILE.read_text()
    instructions = re.findall(r"^(FROM|USER|ENTRYPOINT|CMD|EXPOSE|HEALTHCHECK)\b(.*)$", text, re.M)
    by_name: dict[str, list[str]] = {}
    for name, rest in instructions:
        by_name.setdefault(name, []).append(rest.strip())
    assert all(base.startswith("python:3.11-slim") for base in by_name["FROM"])
    (user,) = by_name["USER"]
    assert not user.startswith(("root", "0"))
    assert by_name["ENTRYPOINT"] == ['["usage-export"]']
    assert by_name["CMD"][-1] == '["ingest"]'
    exposed = {str(metrics_port(s)) for s in SERVICES} | {str(setting_default("api_port"))}
    assert set(by_name["EXPOSE"][0].split()) == exposed
    assert "/health/ready" in text.split("HEALTHCHECK", 1)[1]
    assert "[embedded]" not in text
    assert "pip install --no-cache-dir ." in text


# ---- Kubernetes -------------------------------------------------------------------------
def test_every_manifest_parses_and_the_kustomization_lists_them_all() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    present = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present
    for name in present:
        for doc in load_all(K8S / name):
            assert {"apiVersion", "kind", "metadata"} <= set(doc), name


def test_configmap_holds_valid_settings_and_the_secret_the_keys(
    manifests: dict[tuple[str, str], dict[str, Any]],
) -> None:
    config = manifests["ConfigMap", "usage-export-config"]["data"]
    assert_usage_variables(config, "ConfigMap")
    assert all(isinstance(value, str) for value in config.values())  # ConfigMaps are strings
    assert not {"USAGE_S3_ACCESS_KEY", "USAGE_S3_SECRET_KEY"} & set(config)
    assert config["USAGE_METRICS_HOST"] == "0.0.0.0"  # probes come from outside the pod
    for service in SERVICES:
        assert int(config[f"USAGE_{service.upper()}_METRICS_PORT"]) == metrics_port(service)
    secret = manifests["Secret", "usage-export-s3"]
    assert set(secret["stringData"]) == {"USAGE_S3_ACCESS_KEY", "USAGE_S3_SECRET_KEY"}


@pytest.mark.parametrize("service", SERVICES)
def test_deployments_probe_health_and_read_config_and_secret(
    manifests: dict[tuple[str, str], dict[str, Any]], service: str
) -> None:
    spec = deployment(manifests, service)["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == [service]
    assert container["image"] == "usage-export"
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports["metrics"] == metrics_port(service)
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "metrics"}
    sources = {next(iter(item)): next(iter(item.values()))["name"] for item in container["envFrom"]}
    assert sources == {"configMapRef": "usage-export-config", "secretRef": "usage-export-s3"}
    assert container["resources"]["requests"]["memory"]
    assert container["resources"]["limits"]["memory"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    annotations = spec["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(metrics_port(service))
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()


def test_exporter_grace_period_covers_a_request_in_flight(
    manifests: dict[tuple[str, str], dict[str, Any]],
) -> None:
    pod = deployment(manifests, "exporter")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > setting_default("export_deadline_s") + 15


def test_ingest_replicas_stay_within_the_events_partitions(
    manifests: dict[tuple[str, str], dict[str, Any]],
) -> None:
    replicas = deployment(manifests, "ingest")["spec"]["replicas"]
    partitions = int(
        manifests["ConfigMap", "usage-export-config"]["data"]["USAGE_EVENTS_PARTITIONS"]
    )
    assert 1 <= replicas <= partitions


@pytest.mark.parametrize("service", SERVICES)
def test_metrics_services_select_the_pods_and_expose_the_port(
    manifests: dict[tuple[str, str], dict[str, Any]], service: str
) -> None:
    exposed = manifests["Service", f"usage-{service}-metrics"]["spec"]
    pod_labels = deployment(manifests, service)["spec"]["template"]["metadata"]["labels"]
    assert exposed["selector"].items() <= pod_labels.items()
    (port,) = exposed["ports"]
    assert (port["port"], port["targetPort"]) == (metrics_port(service), "metrics")


# ---- docker-compose -----------------------------------------------------------------------
@pytest.mark.parametrize("service", SERVICES)
def test_compose_services_run_the_image_against_kafka_and_minio(service: str) -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    defined = services[service]
    assert defined["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile"}
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
    assert set(defined["depends_on"]) == {"kafka-init", "minio-init"}
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


def test_the_api_is_served_on_its_port_everywhere(
    manifests: dict[tuple[str, str], dict[str, Any]],
) -> None:
    api_port = int(setting_default("api_port"))
    config = manifests["ConfigMap", "usage-export-config"]["data"]
    assert config["USAGE_API_HOST"] == "0.0.0.0"  # reached from outside the pod
    assert int(config["USAGE_API_PORT"]) == api_port
    (container,) = deployment(manifests, "api")["spec"]["template"]["spec"]["containers"]
    assert {"name": "http", "containerPort": api_port, "protocol": "TCP"} in container["ports"]
    (port,) = manifests["Service", "usage-api"]["spec"]["ports"]
    assert port["targetPort"] == "http"
    compose_api = yaml.safe_load(COMPOSE.read_text())["services"]["api"]
    assert f"127.0.0.1:{api_port}:{api_port}" in compose_api["ports"]
    assert compose_api["environment"]["USAGE_API_HOST"] == "0.0.0.0"
