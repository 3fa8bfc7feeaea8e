"""bench.results, bench.machine and bench.procs parsing: the results file and what it
records about the machine."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bench import compactor, machine, results
from bench.procs import status_field_kb
from shared.settings import Settings

MACHINE = {"cpu": "test cpu", "cores": 2}


def test_recording_a_benchmark_keeps_the_others(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    results.record(path, "ingest", {"events_per_s": 1}, MACHINE)
    results.record(path, "export", {"p50_s": 2}, MACHINE)
    results.record(path, "ingest", {"events_per_s": 3}, MACHINE)

    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["schema"] == results.SCHEMA
    assert document["machine"] == MACHINE
    assert document["benchmarks"] == {"ingest": {"events_per_s": 3}, "export": {"p50_s": 2}}
    assert [item.name for item in tmp_path.iterdir()] == ["results.json"]  # no temp left


def test_an_unreadable_results_file_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text("{not json", encoding="utf-8")
    assert results.load(path) == {"schema": results.SCHEMA, "benchmarks": {}}
    path.write_text('{"benchmarks": []}', encoding="utf-8")
    assert results.load(path)["benchmarks"] == {}
    assert results.load(tmp_path / "missing.json")["benchmarks"] == {}


def test_cpu_and_memory_come_from_proc_texts() -> None:
    cpuinfo = "processor\t: 0\nvendor_id\t: X\nmodel name\t: AMD EPYC 7B13\nflags\t: a b\n"
    assert machine.cpu_model(cpuinfo) == "AMD EPYC 7B13"
    assert machine.cpu_model("processor : 0\n") == "unknown"
    assert machine.mem_total_mb("MemTotal:       24576000 kB\nMemFree: 1 kB\n") == 24000
    assert machine.mem_total_mb("") is None


def test_package_versions_name_missing_packages_none() -> None:
    versions = machine.package_versions(("orjson", "surely-not-installed-package"))
    assert versions["orjson"]
    assert versions["surely-not-installed-package"] is None


def test_status_fields_are_read_in_kilobytes() -> None:
    status = "Name:\tpython\nVmPeak:\t  900 kB\nVmHWM:\t  204800 kB\nThreads:\t4\n"
    assert status_field_kb(status, "VmHWM") == 204800
    assert status_field_kb(status, "Threads") is None
    assert status_field_kb(status, "VmRSS") is None


async def test_the_compactor_runs_apart_until_tidy_and_reports_its_own_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bench.compactor: its own child process, stopped once the dataset is tidy (or with
    an error when it never is), its peak RSS read before the stop."""
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    monkeypatch.setattr(compactor, "compactor_argv", lambda: sleeper)
    asked: list[int] = []

    async def tidy_at_the_second_look() -> bool:
        asked.append(1)
        return len(asked) >= 2

    done = await compactor.compact_until_tidy(
        Settings(), tidy_at_the_second_look, tmp_path / "compactor.log"
    )
    assert done.error is None
    assert done.settle_s is not None
    assert done.settle_s >= 0
    assert done.peak_rss_mb is not None
    assert done.peak_rss_mb > 0

    async def never() -> bool:
        return False

    stuck = await compactor.compact_until_tidy(
        Settings(), never, tmp_path / "stuck.log", timeout_s=0.5
    )
    assert stuck.settle_s is None
    assert stuck.error is not None
    assert "not tidy after" in stuck.error
