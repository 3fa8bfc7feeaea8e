"""The webhook POST against a real server on 127.0.0.1: it connects to the vetted
address without resolving the URL's name (which does not exist), keeps the name in
``Host``, follows no redirect, reads a bounded part of the answer and times out."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from services.delivery.sender import send
from shared.adapters.callback_vetting import VettedCallback
from shared.domain.webhooks.callback_url import parse_callback_url

BODY = b'{"request_id":"r-1"}'


@contextlib.asynccontextmanager
async def server(seen: list[dict[str, Any]]) -> AsyncIterator[int]:
    async def hook(request: web.Request) -> web.StreamResponse:
        seen.append({"host": request.host, "body": await request.read(), **request.headers})
        return web.Response(status=202, body=b"y" * 1_000_000)

    async def moved(request: web.Request) -> web.StreamResponse:
        seen.append({"host": request.host, "path": "/moved"})
        raise web.HTTPFound("/hook")

    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(3)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_post("/moved", moved)
    app.router.add_post("/slow", slow)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


def pinned(url: str) -> VettedCallback:
    target = parse_callback_url(url, allow_http=True)
    return VettedCallback(target=target, address=ipaddress.ip_address("127.0.0.1"))


async def post(url: str) -> Any:
    return await send(
        pinned(url),
        BODY,
        request_id="r-1",
        signature="t=1,v1=00",
        connect_timeout_s=1.0,
        read_timeout_s=0.5,
    )


async def test_the_post_goes_to_the_vetted_address_under_the_urls_name() -> None:
    seen: list[dict[str, Any]] = []
    async with server(seen) as port:
        result = await post(f"http://hooks.webhook-test.invalid:{port}/hook")
    assert result.ok
    assert result.status == 202
    [request] = seen
    assert request["host"] == f"hooks.webhook-test.invalid:{port}"
    assert request["body"] == BODY
    assert request["Usage-Export-Request-Id"] == "r-1"
    assert request["Usage-Export-Signature"] == "t=1,v1=00"
    assert request["Content-Type"] == "application/json"


async def test_redirects_are_failures_and_not_followed() -> None:
    seen: list[dict[str, Any]] = []
    async with server(seen) as port:
        result = await post(f"http://hooks.webhook-test.invalid:{port}/moved")
    assert not result.ok
    assert result.status == 302
    assert [request.get("path") for request in seen] == ["/moved"]


async def test_a_hanging_receiver_times_out_and_a_closed_port_is_an_error() -> None:
    async with server([]) as port:
        slow = await post(f"http://hooks.webhook-test.invalid:{port}/slow")
    assert slow.error == "timed out"
    closed = await post(f"http://hooks.webhook-test.invalid:{port}/hook")  # server gone
    assert not closed.ok
    assert closed.status is None
    assert closed.error is not None
