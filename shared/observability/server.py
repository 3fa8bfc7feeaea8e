"""A small HTTP server for what operators and orchestrators ask a service: metrics, health.

- ``GET /metrics``: the service's own :class:`CollectorRegistry` in Prometheus text format
  (OpenMetrics when the scraper asks for it). One registry per service, not the global
  one, so several services (``usage-export up``) and tests can share a process.
- ``GET /health/live``: 200 as long as the event loop answers. It checks nothing else on
  purpose: a restart does not fix an unreachable broker, so liveness must not fail then.
- ``GET /health/ready``: 200 when every injected readiness check passes, else 503 with a
  JSON body naming each failed check and why. Checks run concurrently with a timeout, so
  a hanging dependency makes the probe fail instead of hang.

aiohttp, because aiobotocore already brings it; the server runs on the service's loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from shared import codec
from shared.lifecycle import StartStopContext

#: A readiness check: returns when the dependency is usable, raises (anything) when not.
ReadinessCheck = Callable[[], Awaitable[None]]


class ObservabilityServer(StartStopContext):
    """``async with ObservabilityServer(registry, port=9464, checks={...}) as server:``.

    ``port=0`` binds a free port (tests); :attr:`port` is the bound one.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        port: int,
        host: str = "127.0.0.1",
        checks: Mapping[str, ReadinessCheck] | None = None,
        check_timeout_s: float = 2.0,
    ) -> None:
        self._registry = registry
        self._host = host
        self._requested_port = port
        self._checks: dict[str, ReadinessCheck] = dict(checks or {})
        self._check_timeout_s = check_timeout_s
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    def add_check(self, name: str, check: ReadinessCheck) -> None:
        """Add (or replace) a named readiness check; takes effect on the next probe."""
        self._checks[name] = check

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("ObservabilityServer is not started")
        return self._port

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self._host in ("0.0.0.0", "") else self._host
        return f"http://{host}:{self.port}"

    # ---- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/health/live", self._live)
        app.router.add_get("/health/ready", self._ready)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._requested_port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        self._port = None

    # ---- handlers ---------------------------------------------------------------------------
    async def _metrics(self, request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = encoder(self._registry)
        # aiohttp wants the charset apart from the media type.
        media_type, _, params = content_type.partition(";")
        charset = "utf-8" if "charset=utf-8" in params.replace(" ", "") else None
        response = web.Response(body=body, charset=charset)
        response.content_type = media_type.strip()
        return response

    async def _live(self, request: web.Request) -> web.Response:
        return _json(200, {"status": "live"})

    async def _ready(self, request: web.Request) -> web.Response:
        results = await self.run_checks()
        failed = {name: why for name, why in results.items() if why is not None}
        body: dict[str, Any] = {
            "status": "not ready" if failed else "ready",
            "checks": {name: "ok" if why is None else "failed" for name, why in results.items()},
        }
        if failed:
            body["failed"] = failed
        return _json(503 if failed else 200, body)

    async def run_checks(self) -> dict[str, str | None]:
        """Every check by name: None when it passed, else why it failed."""
        names = list(self._checks)
        outcomes = await asyncio.gather(*(self._run_check(self._checks[n]) for n in names))
        return dict(zip(names, outcomes, strict=True))

    async def _run_check(self, check: ReadinessCheck) -> str | None:
        started = time.monotonic()
        try:
            await asyncio.wait_for(check(), self._check_timeout_s)
        except TimeoutError:
            return f"no answer within {self._check_timeout_s:g} s"
        except Exception as exc:  # noqa: BLE001 - any failure of a check means "not ready"
            elapsed = time.monotonic() - started
            return f"{type(exc).__name__}: {exc} (after {elapsed:.2f} s)"
        return None


def _json(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(status=status, body=codec.dumps(body), content_type="application/json")
