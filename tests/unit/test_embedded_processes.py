"""Child servers stop when asked, are killed when they ignore it, and die with their parent.

Uses ``sleep`` and a shell as stand-in servers: no network, a second or two in all.
No assertion is on how long something took: the timeouts here only stop a hang.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from shared.embedded.processes import ServerProcess, read_tail, wait_ready
from shared.errors import EmbeddedStackError

SLEEP = shutil.which("sleep")
SH = shutil.which("sh")
pytestmark = pytest.mark.skipif(
    SLEEP is None or SH is None or sys.platform != "linux", reason="needs Linux, sleep and sh"
)
REPO_ROOT = Path(__file__).resolve().parents[2]
HANG_GUARD_S = 30.0  # generous: the machine is shared; a pass never waits this long


async def _eventually(condition: Callable[[], bool], timeout_s: float = HANG_GUARD_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.02)


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return True
    return state == "Z"


async def test_stop_ends_a_cooperative_server_and_is_idempotent(tmp_path: Path) -> None:
    server = ServerProcess("sleeper", [str(SLEEP), "60"], log_path=tmp_path / "s.log")
    server.start()
    assert server.running
    pid = server.pid
    assert pid is not None
    async with asyncio.timeout(HANG_GUARD_S):
        await server.stop()
        await server.stop()
    assert not server.running
    # Ended by the stop signal itself, not by the SIGKILL that follows the grace period.
    assert server.returncode == -signal.SIGTERM
    assert _gone(pid)


async def test_stop_kills_a_server_that_ignores_sigterm(tmp_path: Path) -> None:
    script = "trap '' TERM; echo ready; while true; do sleep 0.05; done"
    server = ServerProcess(
        "stubborn", [str(SH), "-c", script], log_path=tmp_path / "s.log", grace_s=0.3
    )
    server.start()
    assert await _eventually(lambda: "ready" in read_tail(server.log_path)), "never ready"
    async with asyncio.timeout(HANG_GUARD_S):
        await server.stop()
    assert server.returncode == -signal.SIGKILL


async def test_stop_before_start_does_nothing(tmp_path: Path) -> None:
    server = ServerProcess("never", [str(SLEEP), "60"], log_path=tmp_path / "s.log")
    await server.stop()
    assert server.pid is None


async def test_output_goes_to_the_log_and_into_start_up_errors(tmp_path: Path) -> None:
    server = ServerProcess(
        "failing",
        [str(SH), "-c", "echo bad flag -x >&2; exit 3"],
        log_path=tmp_path / "logs" / "f.log",
    )
    server.start()

    async def never_ready() -> None:
        raise OSError("connection refused")

    with pytest.raises(EmbeddedStackError, match=r"exited during start-up \(status 3\)") as err:
        await wait_ready(server, never_ready, timeout_s=5, what="failing server")
    assert "bad flag -x" in str(err.value)
    await server.stop()


async def test_wait_ready_times_out_with_the_last_probe_error(tmp_path: Path) -> None:
    server = ServerProcess("slow", [str(SLEEP), "60"], log_path=tmp_path / "s.log")
    server.start()

    async def refused() -> None:
        raise ConnectionRefusedError("nope")

    try:
        with pytest.raises(EmbeddedStackError, match=r"did not become ready.*nope"):
            await wait_ready(server, refused, timeout_s=0.3, what="slow server")
    finally:
        await server.stop()


async def test_a_server_dies_with_its_sigkilled_parent(tmp_path: Path) -> None:
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from shared.embedded.processes import ServerProcess\n"
        f"server = ServerProcess('orphan', [{str(SLEEP)!r}, '60'], "
        f"log_path=Path({str(tmp_path / 'o.log')!r}))\n"
        "server.start()\n"
        "print(server.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        cwd=REPO_ROOT,
        env=os.environ | {"PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        assert parent.stdout is not None
        child = int(await asyncio.to_thread(parent.stdout.readline))
        assert not _gone(child)
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
    assert await _eventually(lambda: _gone(child)), "the child outlived its SIGKILLed parent"
