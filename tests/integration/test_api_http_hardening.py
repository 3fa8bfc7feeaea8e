"""The HTTP API below its handlers, attacked as issue 13 did, on the real broker and store.

Raw sockets send what no HTTP client would: requests malformed at the HTTP level that
carry a real key, bodies in encodings that are refused or do not decode, heads and
bodies a byte at a time, more connections than allowed, a client that leaves mid-body.
The API runs in this process with 1 s header and body timeouts; the log is captured
through the project's own logging setup (JSON lines), as a service writes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import logging
import secrets
import uuid
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import pytest_asyncio

from services.api.keys import parse_key
from shared import codec
from shared.adapters.logging import setup_logging
from shared.embedded import ensure_infrastructure, isolated_settings
from shared.settings import Settings
from tests.integration.api_tools import create_key, running_api
from tests.integration.conftest import InfraStack

ORG = "ws-hardening"
SHORT_TIMEOUTS = {"api_header_timeout_s": 1.0, "api_body_timeout_s": 1.0}
#: Far above the 1 s settings: the server must act within it; no timing is asserted.
GENEROUS_S = 30.0
DRIP_PAUSE_S = 0.2
DOCS_BODY = (
    b'{"from": {"date": "2024-01-01", "timezone": "UTC"}, '
    b'"to": {"date": "2024-01-31", "timezone": "UTC"}}'
)


@dataclass(frozen=True)
class Served:
    settings: Settings
    url: str
    metrics_url: str
    key: str
    log: io.StringIO

    @property
    def secret(self) -> str:
        parsed = parse_key(self.key)
        assert parsed is not None
        return parsed.secret

    def leaks(self, text: str | bytes) -> bool:
        """Whether ``text`` holds any of the key's secret (its first 12 characters)."""
        part = self.secret[:12]
        if isinstance(text, bytes):
            return part.encode() in text
        return part in text

    def log_records(self) -> list[dict[str, Any]]:
        return [codec.loads(line) for line in self.log.getvalue().splitlines()]


@contextlib.contextmanager
def captured_logs() -> Iterator[io.StringIO]:
    """The process's log as a service writes it (``setup_logging``), restored after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    installed = setup_logging("INFO", json=True, stream=stream)
    try:
        yield stream
    finally:
        root.removeHandler(installed)
        for handler in handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)


@pytest_asyncio.fixture(scope="module")
async def api(stack: InfraStack) -> AsyncIterator[Served]:
    base = stack.settings.model_copy(update=SHORT_TIMEOUTS)
    settings = isolated_settings(base, "hard" + uuid.uuid4().hex[:10])
    await ensure_infrastructure(settings)
    key = await create_key(settings, ORG, name="hardening")
    with captured_logs() as log:
        async with running_api(settings) as serving:
            yield Served(settings, serving.api_url, serving.metrics_url, key, log)


@dataclass(frozen=True)
class RawAnswer:
    raw: bytes
    status: int
    headers: dict[str, str]
    body: Any


def parse_answer(raw: bytes) -> RawAnswer:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    is_json = headers.get("content-type") == "application/json"
    return RawAnswer(
        raw, int(status_line.split()[1]), headers, codec.loads(body) if is_json else body
    )


async def open_raw(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    address = urlsplit(url)
    assert address.hostname is not None
    assert address.port is not None
    return await asyncio.open_connection(address.hostname, address.port)


async def exchange(url: str, data: bytes) -> bytes:
    """Sends ``data`` and reads until the server closes the connection."""
    reader, writer = await open_raw(url)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), GENEROUS_S)
    finally:
        writer.close()


async def drip(url: str, head: bytes, drop: bytes) -> bytes | None:
    """Sends ``head`` at once, then ``drop`` a byte every DRIP_PAUSE_S; what the server
    answered before closing the connection, or None if it kept it open GENEROUS_S."""
    reader, writer = await open_raw(url)
    received = b""
    try:
        writer.write(head)
        for step in range(int(GENEROUS_S / DRIP_PAUSE_S)):
            try:
                chunk = await asyncio.wait_for(reader.read(65536), DRIP_PAUSE_S)
            except TimeoutError:
                writer.write(drop[step % len(drop) : step % len(drop) + 1])
                continue
            except ConnectionError:
                return received
            if not chunk:
                return received
            received += chunk
        return None
    finally:
        writer.close()


def request_bytes(path: str, key: str | None, body: bytes, **headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: api", "Content-Type: application/json"]
    if key is not None:
        lines.append(f"Authorization: Bearer {key}")
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def assert_quiet_log(api: Served) -> None:
    """No ERROR, no traceback from the API or aiohttp, no secret anywhere: client errors
    are the client's business."""
    records = [r for r in api.log_records() if r["logger"].startswith(("services.api", "aiohttp"))]
    assert not [r for r in records if r["level"] == "ERROR" or "exc" in r], records
    assert not api.leaks(api.log.getvalue())


async def requests_by_status(api: Served, route: str) -> dict[str, float]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{api.metrics_url}/metrics") as response,
    ):
        text = await response.text()
    prefix = f'usage_api_requests_total{{route="{route}",status="'
    counts = {}
    for line in text.splitlines():
        if line.startswith(prefix):
            labels, value = line.rsplit(" ", 1)
            counts[labels.removeprefix(prefix).removesuffix('"}')] = float(value)
    return counts


# ---- finding 3: keys echoed and logged ---------------------------------------------------
def malformed_requests(key: str) -> dict[str, bytes]:
    bearer = f"Authorization: Bearer {key}".encode()
    ok = b"POST /export/users HTTP/1.1\r\nHost: api\r\n"
    return {
        "folded header": ok + bearer + b"\r\n folded-on\r\nContent-Length: 0\r\n\r\n",
        "bare LF lines": ok.replace(b"\r\n", b"\n") + bearer + b"\nContent-Length: 0\n\n",
        "NUL in a header": ok + bearer + b"\x00\r\nContent-Length: 0\r\n\r\n",
        "NUL in the key": ok + bearer[:-5] + b"\x00" + bearer[-5:] + b"\r\n\r\n",
        "space before colon": ok + b"Authorization : Bearer " + key.encode() + b"\r\n\r\n",
    }


async def test_malformed_requests_get_the_error_body_and_the_key_is_nowhere(api: Served) -> None:
    for name, request in malformed_requests(api.key).items():
        answer = parse_answer(await exchange(api.url, request))
        assert answer.status == 400, (name, answer.raw)
        assert answer.headers["content-type"] == "application/json", name
        assert set(answer.body) == {"error", "message"}, name
        assert answer.body["error"] == "Bad Request"
        assert not api.leaks(answer.raw), name
        assert b"Authorization" not in answer.raw, name
    refusals = [r for r in api.log_records() if "malformed request" in r["msg"]]
    assert len(refusals) >= len(malformed_requests(api.key))
    assert_quiet_log(api)


# ---- finding 4: bad encodings are 500s ---------------------------------------------------
@pytest.mark.parametrize("coding", ["br", "zstd", "compress", "x-gzip", "gzip, gzip"])
async def test_encodings_not_accepted_are_415(api: Served, coding: str) -> None:
    request = request_bytes("/export/users", api.key, b"\x00garbage", Content_Encoding=coding)
    answer = parse_answer(await exchange(api.url, request))
    assert answer.status == 415, answer.raw
    assert answer.body["error"] == "Unsupported Media Type"
    assert answer.headers["accept-encoding"] == "gzip, deflate"
    assert "Please install" not in answer.body["message"]
    assert_quiet_log(api)


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
@pytest.mark.parametrize("with_key", [True, False], ids=["key", "no-key"])
async def test_bodies_that_do_not_decode_are_400(api: Served, coding: str, with_key: bool) -> None:
    garbage = secrets.token_bytes(64)
    key = api.key if with_key else None
    request = request_bytes("/export/users", key, garbage, Content_Encoding=coding)
    answer = parse_answer(await exchange(api.url, request))
    assert answer.status == 400, answer.raw
    assert (
        answer.body["message"]
        == f"The body is not valid {coding} data (Content-Encoding: {coding})"
    )
    assert_quiet_log(api)


@pytest.mark.parametrize("coding", ["gzip", "deflate", "identity"])
async def test_accepted_encodings_are_decoded(api: Served, coding: str) -> None:
    """The body decodes and reaches the handler's check: JSON, but not an object."""
    encoders: dict[str, Callable[[bytes], bytes]] = {
        "gzip": gzip.compress,
        "deflate": zlib.compress,
        "identity": bytes,
    }
    encode = encoders[coding]
    request = request_bytes(
        "/export/users", api.key, encode(b"[]"), Content_Encoding=coding, Connection="close"
    )
    answer = parse_answer(await exchange(api.url, request))
    assert answer.status == 400, answer.raw
    assert answer.body["message"].startswith("The body must be a JSON object")


# ---- finding 5: slow clients hold connections forever ------------------------------------
async def test_heads_sent_a_byte_at_a_time_are_cut_off(api: Served) -> None:
    head = request_bytes("/export/users", api.key, DOCS_BODY)
    answers = await asyncio.gather(*(drip(api.url, b"", head) for _ in range(10)))
    assert all(answer == b"" for answer in answers), answers  # closed, nothing answered


async def test_bodies_sent_a_byte_at_a_time_get_408(api: Served) -> None:
    announced = b" " * 1000  # more than GENEROUS_S of drops
    head = request_bytes("/export/users", api.key, announced).removesuffix(announced)
    answers = await asyncio.gather(*(drip(api.url, head, DOCS_BODY) for _ in range(5)))
    for raw in answers:
        assert raw is not None, "the server kept a slow body's connection open"
        answer = parse_answer(raw)
        assert answer.status == 408, raw
        assert answer.headers["connection"] == "close"
        assert set(answer.body) == {"error", "message"}
    assert_quiet_log(api)


async def test_a_client_that_leaves_mid_body_is_not_a_500(api: Served) -> None:
    request = request_bytes("/export/projects", api.key, DOCS_BODY)
    _, writer = await open_raw(api.url)
    writer.write(request[: -len(DOCS_BODY) // 2])
    await writer.drain()
    await asyncio.sleep(0.5)  # the server is reading the body (its timeout is 1 s)
    writer.close()
    for _ in range(int(GENEROUS_S / DRIP_PAUSE_S)):
        counts = await requests_by_status(api, "projects")
        if counts:
            break
        await asyncio.sleep(DRIP_PAUSE_S)
    assert counts == {"499": 1.0}
    assert_quiet_log(api)


async def test_connections_beyond_the_limit_are_answered_503(api: Served) -> None:
    limited = api.settings.model_copy(
        update={"api_max_connections": 4, "api_header_timeout_s": 120.0}
    )
    async with running_api(limited) as serving:
        held = [await open_raw(serving.api_url) for _ in range(4)]
        try:
            reader, writer = await open_raw(serving.api_url)
            try:
                raw = await asyncio.wait_for(reader.read(), 10.0)
            finally:
                writer.close()
            answer = parse_answer(raw)
            assert answer.status == 503, raw
            assert answer.headers["retry-after"] == "5"
            assert answer.body["error"] == "Service Unavailable"
        finally:
            for _, held_writer in held:
                held_writer.close()
        # Once the held connections are gone, new ones are served again.
        for _ in range(int(GENEROUS_S / DRIP_PAUSE_S)):
            served = parse_answer(
                await exchange(
                    serving.api_url,
                    request_bytes("/export/users", None, b"{}", Connection="close"),
                )
            )
            if served.status != 503:
                break
            await asyncio.sleep(DRIP_PAUSE_S)
        assert served.status == 401
