"""One POST of a completion to its callback URL, to the address vetted for it.

The connection goes to the vetted address only: aiohttp's resolver is replaced by one
that answers that address for the URL's host, so there is no second DNS lookup (no
rebinding window) while the URL, and so TLS's SNI, the certificate check and ``Host``,
keep the host name. No redirect is followed (a 3xx is a failure), at most
:data:`MAX_RESPONSE_BYTES` of a response are read, and connecting and reading have
their own timeouts.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from shared.adapters.callback_vetting import VettedCallback
from shared.domain.webhooks.addresses import IPAddress
from shared.domain.webhooks.signature import REQUEST_ID_HEADER, SIGNATURE_HEADER

MAX_RESPONSE_BYTES = 4096
USER_AGENT = "usage-export-webhooks/1"


class PinnedResolver(AbstractResolver):
    """Answers the one vetted address for the one host it was made for."""

    def __init__(self, host: str, address: IPAddress) -> None:
        self._host = host
        self._address = address

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if _normal(host) != _normal(self._host):
            raise OSError(f"{host} is not the vetted callback host")
        af = socket.AF_INET6 if self._address.version == 6 else socket.AF_INET
        return [
            {
                "hostname": host,
                "host": str(self._address),
                "port": port,
                "family": af,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        return None


def _normal(host: str) -> str:
    return host.lower().rstrip(".")


@dataclass(frozen=True, slots=True)
class SendResult:
    """``error`` is None for a 2xx; else what went wrong, for the log and the record."""

    status: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


async def send(
    callback: VettedCallback,
    body: bytes,
    *,
    request_id: str,
    signature: str,
    connect_timeout_s: float,
    read_timeout_s: float,
    ssl_context: ssl.SSLContext | None = None,
) -> SendResult:
    """POST ``body``; never raises for the receiver's failures (they are the result).
    ``ssl_context``: None verifies receivers against the system's CAs (tests pass one
    trusting their own CA)."""
    connector = aiohttp.TCPConnector(
        resolver=PinnedResolver(callback.target.host, callback.address),
        use_dns_cache=False,
        force_close=True,
        ssl=ssl_context if ssl_context is not None else True,
    )
    timeout = aiohttp.ClientTimeout(
        total=connect_timeout_s + read_timeout_s,
        sock_connect=connect_timeout_s,
        sock_read=read_timeout_s,
    )
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        REQUEST_ID_HEADER: request_id,
        SIGNATURE_HEADER: signature,
    }
    try:
        async with (
            aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
            session.post(
                callback.target.url, data=body, headers=headers, allow_redirects=False
            ) as response,
        ):
            await response.content.read(MAX_RESPONSE_BYTES)
            status = response.status
    except TimeoutError:
        return SendResult(None, "timed out")
    except (aiohttp.ClientError, OSError) as exc:
        return SendResult(None, f"{type(exc).__name__}: {exc}"[:500])
    if 200 <= status < 300:
        return SendResult(status, None)
    return SendResult(status, f"answered HTTP {status}")
