"""The fault proxy itself, against a loopback echo server: it forwards, resets, black-holes
and freezes exactly what the scenarios rely on."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.integration.reliability.proxy import FaultProxy


@pytest_asyncio.fixture
async def echo_port() -> AsyncIterator[int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def round_trip(port: int, payload: bytes, timeout_s: float = 5.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(len(payload)), timeout_s)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def test_forwards_resets_blackholes_and_restores(echo_port: int) -> None:
    with FaultProxy("127.0.0.1", echo_port) as proxy:
        assert await round_trip(proxy.port, b"hello" * 20_000) == b"hello" * 20_000
        proxy.cut("reset")
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await round_trip(proxy.port, b"refused")
        proxy.restore()
        assert await round_trip(proxy.port, b"back") == b"back"
        proxy.cut("blackhole")
        with pytest.raises(TimeoutError):
            await round_trip(proxy.port, b"lost", timeout_s=0.5)
        proxy.restore()
        assert await round_trip(proxy.port, b"again") == b"again"
        assert proxy.stats.cuts == 2
        assert proxy.stats.held >= 1


async def test_a_trigger_freezes_only_the_matching_connection(echo_port: int) -> None:
    with FaultProxy("127.0.0.1", echo_port) as proxy:
        trigger = proxy.arm(rb"PUT /bucket/[a-z]+\.csv")
        assert await round_trip(proxy.port, b"GET /bucket/a.csv") == b"GET /bucket/a.csv"
        with pytest.raises(TimeoutError):
            await round_trip(proxy.port, b"PUT /bucket/file.csv HTTP/1.1", timeout_s=0.5)
        assert await trigger.wait(1.0)
        assert trigger.matched == b"PUT /bucket/file.csv"
        proxy.release()
        # Disarmed: the same request goes through now.
        payload = b"PUT /bucket/file.csv HTTP/1.1"
        assert await round_trip(proxy.port, payload) == payload


async def test_a_held_answer_reaches_the_store_but_not_the_client(echo_port: int) -> None:
    """``hold="response"``: the request takes effect (the echo server answers it), the
    client never hears back; ``accept`` sees the request lines before the matching one."""
    with FaultProxy("127.0.0.1", echo_port) as proxy:
        trigger = proxy.arm(
            rb"PUT /b/head",
            hold="response",
            accept=lambda match: proxy.requests[-1:] == ["PUT /b/seg"],
        )
        for line in (b"GET /b/head HTTP/1.1\r\n", b"PUT /b/head HTTP/1.1\r\n"):
            assert await round_trip(proxy.port, line) == line  # not after a segment: passes
        assert not trigger.fired.is_set()
        segment = b"PUT /b/seg HTTP/1.1\r\n"
        assert await round_trip(proxy.port, segment) == segment
        held = b"PUT /b/head HTTP/1.1\r\n"
        with pytest.raises(TimeoutError):
            await round_trip(proxy.port, held, timeout_s=0.5)
        assert await trigger.wait(1.0)
        assert await trigger.wait_answered(1.0)
        assert trigger.answer == held  # the target answered it; the client did not see it
        assert proxy.requests == ["GET /b/head", "PUT /b/head", "PUT /b/seg", "PUT /b/head"]
        proxy.release()
        assert await round_trip(proxy.port, held) == held  # disarmed
