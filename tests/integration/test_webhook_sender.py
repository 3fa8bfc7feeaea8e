"""The webhook POST against a real server on 127.0.0.1: it connects to the vetted
address without resolving the URL's name (which does not exist), keeps the name in
``Host`` and for TLS (SNI, the certificate's name check), follows no redirect, reads a
bounded part of the answer and times out."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from services.delivery.sender import send
from shared.adapters.callback_vetting import VettedCallback
from shared.domain.webhooks.callback_url import parse_callback_url
from tests.clock import NOW

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

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            while True:  # an answer that never ends: only its first bytes may be read
                await response.write(b"z" * 65536)
                await asyncio.sleep(0.001)
        return response

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_post("/endless", endless)
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


def certificate_for(name: str, directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate (its own CA) for ``name`` only, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = NOW - timedelta(hours=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_tls_checks_the_urls_name_while_connecting_to_the_vetted_address(
    tmp_path: Path,
) -> None:
    name = "hooks.webhook-test.invalid"
    cert_path, key_path = certificate_for(name, tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_path, key_path)
    seen: list[str] = []

    async def hook(request: web.Request) -> web.StreamResponse:
        seen.append(request.host)
        return web.Response(status=200)

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            while True:  # an answer that never ends: only its first bytes may be read
                await response.write(b"z" * 65536)
                await asyncio.sleep(0.001)
        return response

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_post("/endless", endless)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_tls).start()
    port = int(runner.addresses[0][1])
    trusting = ssl.create_default_context(cafile=str(cert_path))
    try:

        async def post_to(host: str) -> Any:
            return await send(
                pinned(f"https://{host}:{port}/hook"),
                BODY,
                request_id="r-1",
                signature="t=1,v1=00",
                connect_timeout_s=1.0,
                read_timeout_s=1.0,
                ssl_context=trusting,
            )

        good = await post_to(name)
        # Same address, same certificate, another name: the certificate does not match it.
        wrong = await post_to("other.webhook-test.invalid")
    finally:
        await runner.cleanup()
    assert good.ok, good.error
    assert seen == [f"{name}:{port}"]
    assert not wrong.ok
    assert wrong.error is not None
    assert "certificate" in wrong.error.lower() or "hostname" in wrong.error.lower()


async def test_only_the_first_bytes_of_an_endless_answer_are_read() -> None:
    async with server([]) as port:
        result = await post(f"http://hooks.webhook-test.invalid:{port}/endless")
    assert result.ok  # reading it all would have timed out (or filled the memory)
    assert result.status == 200
