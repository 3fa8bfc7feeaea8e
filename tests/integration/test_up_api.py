"""``usage-export up`` runs the HTTP API too (contract §7): ``USAGE_API_URL`` in usage.env,
a key from ``usage-export keys create``, and an export request answered through it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import aiohttp

from shared.embedded.ports import free_ports
from tests.integration.api_tools import Answer, call, window
from tests.integration.test_api import FROM, TO
from tests.integration.test_embedded_stack import running_up

_API_READY_TIMEOUT_S = 60.0


async def _keys_create(env: dict[str, str], org_id: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services",
        "keys",
        "create",
        "--org",
        org_id,
        env=os.environ | env,
        stdout=asyncio.subprocess.PIPE,
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, output
    return output.decode().strip().splitlines()[-1]


async def _first_answer(url: str, key: str) -> Answer:
    """The API's answer once it listens (usage.env is written before services start)."""
    deadline = time.monotonic() + _API_READY_TIMEOUT_S
    while True:
        try:
            return await call(url, key=key, body=window(FROM, TO))
        except aiohttp.ClientConnectionError:
            assert time.monotonic() < deadline, "the API never listened"
            await asyncio.sleep(0.5)


async def test_up_serves_the_api_on_api_port_and_names_it_in_usage_env(tmp_path: Path) -> None:
    (api_port,) = free_ports(1)
    async with running_up(tmp_path, "--api-port", str(api_port), infra_only=False) as up:
        env = await up.wait_ready()
        assert env["USAGE_API_URL"] == f"http://127.0.0.1:{api_port}"
        key = await _keys_create(env, "ws-up")
        answer = await _first_answer(f"{env['USAGE_API_URL']}/export/users", key)
        # A workspace without events: the exporter's 404 came back through the API.
        assert answer.status == 404, (answer, up.output_tail())
        assert answer.body["error"] == "No data found"
        up.process.send_signal(signal.SIGTERM)
        assert await up.wait_exit(90) == 0, up.output_tail()
    assert "Traceback" not in up.output.read_text()
