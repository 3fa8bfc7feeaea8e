"""Server binaries as child processes that never outlive the Python process that started them.

Three layers make sure no broker or store is left behind:

* ``stop()`` sends the stop signal to the child's process group, waits a grace period,
  then SIGKILLs the group (SeaweedFS ignores SIGTERM for many seconds);
* each child runs in its own session (``start_new_session``), so a Ctrl-C in the
  terminal reaches only us and we stop the servers in order;
* on Linux each child asks the kernel for SIGKILL when its parent dies
  (``prctl(PR_SET_PDEATHSIG)``), which covers a parent killed with SIGKILL.

The parent-death signal fires when the *thread* that forked the child exits, so
:meth:`ServerProcess.start` must run on a thread that lives as long as the server: the
event loop's thread, never ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from shared.errors import EmbeddedStackError

_PR_SET_PDEATHSIG = 1
_POLL_S = 0.05


def _parent_death_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the kernel SIGKILL the child when we die (Linux only).

    libc and its ``prctl`` are looked up here, before the fork, so the child runs as
    little Python as possible between fork and exec.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent_pid = os.getpid()
    # prctl is variadic: pass unsigned longs explicitly so no register holds garbage.
    args = (
        ctypes.c_int(_PR_SET_PDEATHSIG),
        ctypes.c_ulong(signal.SIGKILL),
        ctypes.c_ulong(0),
        ctypes.c_ulong(0),
        ctypes.c_ulong(0),
    )

    def hook() -> None:
        if prctl(*args) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent_pid:  # we died between fork and prctl
            os._exit(1)

    return hook


def read_tail(path: Path, lines: int = 25, max_bytes: int = 16_384) -> str:
    """The last ``lines`` lines of a log file, for error messages (empty if unreadable)."""
    try:
        with path.open("rb") as file:
            file.seek(0, os.SEEK_END)
            size = file.tell()
            file.seek(max(0, size - max_bytes))
            data = file.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


class ServerProcess:
    """One long-running server binary, its output in a log file; start, then ``await stop()``.

    ``stop()`` is idempotent and safe to call when ``start()`` failed or never ran.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
        grace_s: float = 5.0,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._cwd = cwd
        self._env = dict(env) if env is not None else None
        self._stop_signal = stop_signal
        self._grace_s = grace_s
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def returncode(self) -> int | None:
        """The exit status once the child has exited (and been reaped), else ``None``."""
        return self._process.poll() if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Spawn the child (synchronous and fast: the server boots in the background)."""
        if self._process is not None:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._cwd,
                env=self._env,
                start_new_session=True,
                preexec_fn=_parent_death_hook(),
            )

    def log_tail(self, lines: int = 25) -> str:
        return read_tail(self.log_path, lines)

    async def stop(self) -> None:
        """Stop signal to the process group, grace period, then SIGKILL; always reaps."""
        process = self._process
        if process is None or process.returncode is not None:
            return
        self._signal_group(process.pid, self._stop_signal)
        if not await self._wait_exited(process.pid, self._grace_s):
            self._signal_group(process.pid, signal.SIGKILL)
            await self._wait_exited(process.pid, 10.0)
        # The leader is a zombie until reaped, so its group id cannot be reused yet:
        # sweep anything it may have spawned, then reap.
        self._signal_group(process.pid, signal.SIGKILL)
        process.wait(timeout=10.0)

    @staticmethod
    def _signal_group(pgid: int, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signum)

    @staticmethod
    async def _wait_exited(pid: int, timeout_s: float) -> bool:
        """Whether ``pid`` exited within ``timeout_s``; leaves it unreaped (WNOWAIT)."""
        deadline = time.monotonic() + timeout_s
        while not _has_exited(pid):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(_POLL_S)
        return True


def _has_exited(pid: int) -> bool:
    """Non-blocking (WNOHANG) exit check that leaves the child to be reaped (WNOWAIT)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True  # already reaped


async def wait_ready(
    process: ServerProcess, probe: Callable[[], Awaitable[object]], *, timeout_s: float, what: str
) -> None:
    """Call ``probe`` until it succeeds; fail early if the server exits, late on timeout.

    The error names the last probe failure and ends with the tail of the server's log,
    which is where a bad flag or a port taken by someone else shows up.
    """
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    last_error = "no attempt yet"
    while True:
        if not process.running:
            raise EmbeddedStackError(
                f"{what} exited during start-up (status {process.returncode}); "
                f"log {process.log_path}:\n{process.log_tail()}"
            )
        try:
            await probe()
        except (OSError, ValueError, TimeoutError, BotoCoreError, ClientError) as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        else:
            return
        if time.monotonic() >= deadline:
            raise EmbeddedStackError(
                f"{what} did not become ready within {timeout_s:.0f} s (last probe: "
                f"{last_error}); log {process.log_path}:\n{process.log_tail()}"
            )
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 0.5)
