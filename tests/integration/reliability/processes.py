"""The services as child processes (``python -m services ingest|exporter``), so a test can
SIGKILL, SIGSTOP or add them like an orchestrator would, and read their memory.

``ServiceFleet`` owns every process it started and stops them all when its block ends,
whatever happened inside it: a test never leaves a service behind.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from shared.embedded.processes import _parent_death_hook
from shared.settings import Settings, settings_env

Service = Literal["ingest", "exporter", "delivery"]


class ServiceProcess:
    """One service process; its stderr goes to ``log_path`` (appended across restarts)."""

    def __init__(
        self, service: Service, settings: Settings, log_path: Path, *, log_level: str = "WARNING"
    ) -> None:
        self.service = service
        self.settings = settings
        self.log_path = log_path
        self.log_level = log_level
        self._process: subprocess.Popen[bytes] | None = None
        self.peak_rss_kib = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._process.poll() if self._process is not None else None

    def start(self) -> None:
        if self.alive:
            raise RuntimeError(f"{self.service} is already running")
        env = os.environ | settings_env(self.settings) | {"PYTHONUNBUFFERED": "1"}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "services", self.service, "--log-level", self.log_level],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                preexec_fn=_parent_death_hook(),  # never outlives the test process
            )

    def signal(self, signum: signal.Signals) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signum)

    def kill(self) -> int:
        """SIGKILL and reap; returns the exit status (``-9`` if it was running)."""
        process = self._process
        if process is None:
            raise RuntimeError(f"{self.service} was never started")
        self.sample_memory()
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        return process.wait(timeout=30)

    async def terminate(self, timeout_s: float = 120.0) -> int:
        """SIGTERM (drain, commit, exit) and wait; SIGKILL after ``timeout_s``."""
        process = self._process
        if process is None:
            raise RuntimeError(f"{self.service} was never started")
        self.sample_memory()
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)  # a stopped process cannot handle SIGTERM
            process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(process.wait, timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
            raise AssertionError(
                f"{self.service} did not stop within {timeout_s:.0f} s of SIGTERM; "
                f"log:\n{self.log_tail()}"
            ) from None

    def sample_memory(self) -> int:
        """Peak resident memory (VmHWM) of the process so far, in KiB; remembered."""
        if self._process is not None and self._process.poll() is None:
            try:
                status = Path(f"/proc/{self._process.pid}/status").read_text()
            except OSError:
                return self.peak_rss_kib
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_rss_kib = max(self.peak_rss_kib, int(line.split()[1]))
        return self.peak_rss_kib

    def log_count(self, fragment: str) -> int:
        """How many log lines contain ``fragment``."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return 0
        return sum(1 for line in text.splitlines() if fragment in line)

    async def wait_for_log(self, fragment: str, timeout_s: float = 120.0) -> None:
        """Until a log line contains ``fragment`` (e.g. the service is up)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self.log_count(fragment) == 0:
            self.check_alive()
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(
                    f"{self.service} never logged {fragment!r}:\n{self.log_tail()}"
                )
            await asyncio.sleep(0.2)

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def check_alive(self) -> None:
        if not self.alive:
            raise AssertionError(
                f"{self.service} exited with {self.returncode}; log:\n{self.log_tail()}"
            )


class ServiceFleet:
    """``async with ServiceFleet(log_dir) as fleet:`` — every process started through it
    is stopped (SIGKILL if need be) when the block ends."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self.processes: list[ServiceProcess] = []

    def start(
        self, service: Service, settings: Settings, *, log_level: str = "WARNING"
    ) -> ServiceProcess:
        log_path = self._log_dir / f"{service}-{len(self.processes)}.log"
        process = ServiceProcess(service, settings, log_path, log_level=log_level)
        self.processes.append(process)
        process.start()
        return process

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for process in self.processes:
            if process.alive:
                process.kill()


_METRICS_URL = re.compile(r"metrics and health on (http://[0-9.]+:\d+)")


async def metric(process: ServiceProcess, name: str) -> float:
    """The value of an unlabelled metric of the process's /metrics (its address is in
    its INFO log line); 0 while it does not report it yet."""
    found = _METRICS_URL.findall(process.log_path.read_text(errors="replace"))
    if not found:
        return 0.0

    def scrape() -> str:
        with urllib.request.urlopen(found[-1] + "/metrics", timeout=10) as response:  # noqa: S310 - loopback
            text: str = response.read().decode()
            return text

    for line in (await asyncio.to_thread(scrape)).splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return 0.0
