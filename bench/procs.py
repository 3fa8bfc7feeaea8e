"""Subprocesses under measurement: start with a log file, read their peak RSS, stop them.

Peak RSS is the kernel's high-water mark of the process (``VmHWM`` in
``/proc/PID/status``), read just before the process is stopped: the service's own
memory, not the benchmark driver's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

STOP_GRACE_S = 60.0

#: Every child started and not yet reaped, so an interrupted benchmark can end them.
_LIVE: set[Measured] = set()


def kill_leftovers() -> None:
    """SIGKILL the process group of every child this process started that still runs."""
    for child in list(_LIVE):
        if child._process is not None and child._process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child._process.pid, signal.SIGKILL)
        _LIVE.discard(child)


def status_field_kb(status: str, name: str) -> int | None:
    """A ``kB`` field of a ``/proc/PID/status`` text (e.g. ``VmHWM``), or None."""
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key == name:
            parts = value.split()
            if parts and parts[-1] == "kB":
                return int(parts[0])
    return None


def peak_rss_mb(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    except OSError:
        return None
    kb = status_field_kb(status, "VmHWM")
    return None if kb is None else kb / 1024


class Measured:
    """``async with Measured(argv, env=..., log_path=...) as proc:`` — one child process.

    ``started_at`` is the wall-clock time (``time.time()``) of the spawn; ``stop()`` reads
    the peak RSS, sends SIGTERM (SIGKILL after a grace period) and returns the exit code.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        log_path: Path,
        cwd: Path | None = None,
    ) -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.cwd = cwd
        self.started_at = 0.0
        self.peak_rss_mb: float | None = None
        self.returncode: int | None = None
        self._process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("not started")
        return self._process.pid

    @property
    def exited(self) -> bool:
        return self._process is not None and self._process.returncode is not None

    async def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.started_at = time.time()
            self._process = await asyncio.create_subprocess_exec(
                *self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # a Ctrl-C of the driver reaches us, not the child
            )
        _LIVE.add(self)

    def sample_peak_rss(self) -> float | None:
        if self._process is not None and self._process.returncode is None:
            value = peak_rss_mb(self._process.pid)
            if value is not None:
                self.peak_rss_mb = max(self.peak_rss_mb or 0.0, value)
        return self.peak_rss_mb

    async def stop(self, grace_s: float = STOP_GRACE_S) -> int | None:
        process = self._process
        if process is None:
            return None
        if process.returncode is None:
            self.sample_peak_rss()
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), grace_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        self.returncode = process.returncode
        _LIVE.discard(self)
        return self.returncode

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
