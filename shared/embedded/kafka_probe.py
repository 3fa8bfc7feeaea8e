"""A Kafka liveness probe with no client library: one ApiVersions round trip.

A broker that answers ApiVersions parses requests and serves its listener, which is
what "ready" means for Tansu (its storage is in memory, nothing else to wait for).
aiokafka's clients would retry and log on every refused connection while the broker
boots; this probe fails fast and quietly, so the caller can loop on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct

_API_VERSIONS = 18
_CLIENT_ID = b"usage-export-probe"


def encode_api_versions_request(correlation_id: int) -> bytes:
    """A size-prefixed ApiVersions v0 request (header v1: key, version, id, client id)."""
    header = struct.pack(">hhih", _API_VERSIONS, 0, correlation_id, len(_CLIENT_ID))
    body = header + _CLIENT_ID
    return struct.pack(">i", len(body)) + body


def parse_api_versions_response(payload: bytes, correlation_id: int) -> dict[int, tuple[int, int]]:
    """API key -> (min, max) version from an ApiVersions v0 response (without its size).

    Raises ValueError when the response is not a successful answer to our request.
    """
    if len(payload) < 10:
        raise ValueError(f"ApiVersions response too short ({len(payload)} bytes)")
    received_id, error_code, count = struct.unpack_from(">ihi", payload, 0)
    if received_id != correlation_id:
        raise ValueError(f"ApiVersions correlation id {received_id} != {correlation_id}")
    if error_code != 0:
        raise ValueError(f"ApiVersions error code {error_code}")
    if count < 0 or len(payload) < 10 + 6 * count:
        raise ValueError(f"ApiVersions response truncated ({count} entries announced)")
    versions: dict[int, tuple[int, int]] = {}
    for index in range(count):
        key, low, high = struct.unpack_from(">hhh", payload, 10 + 6 * index)
        versions[key] = (low, high)
    return versions


async def probe_kafka(
    host: str, port: int, *, timeout_s: float = 2.0
) -> dict[int, tuple[int, int]]:
    """One ApiVersions exchange with ``host:port``; raises OSError/ValueError/TimeoutError."""
    async with asyncio.timeout(timeout_s):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(encode_api_versions_request(correlation_id=1))
            await writer.drain()
            (size,) = struct.unpack(">i", await reader.readexactly(4))
            if not 0 < size <= 1 << 20:
                raise ValueError(f"implausible Kafka response size {size}")
            return parse_api_versions_response(await reader.readexactly(size), 1)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
