"""Is a ``callback_url`` one we may call? Its shape, then its host resolved (async,
bounded by ``USAGE_WEBHOOK_DNS_TIMEOUT_S``) and every address it resolves to judged by
``shared.domain.webhooks.addresses``. Used at request time (exporter, HTTP API: a refusal
is a 400) and again by the delivery service before each try, which then connects to the
very address vetted here (no second lookup, so no DNS-rebinding window).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from shared.domain.webhooks.addresses import IPAddress, refusal
from shared.domain.webhooks.callback_url import CallbackTarget, parse_callback_url
from shared.errors import UsageExportError
from shared.settings import Settings

#: ``resolve(host, port)``: the addresses of ``host`` (OSError when it has none).
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]


class CallbackRefused(UsageExportError):
    """The callback URL may not be called; the message says why (a 400's message)."""


#: Lookups at once, in daemon threads of their own. ``getaddrinfo`` cannot be cancelled:
#: a host whose name servers never answer holds its thread long after the vetting's
#: timeout. In the default executor those would be the threads the exporter's scans run
#: in (``asyncio.to_thread``), so a few such requests could stall every export; here a
#: lookup beyond the limit is refused at once instead (a 400, or a failed try).
MAX_LOOKUPS = 32
_lookups = threading.BoundedSemaphore(MAX_LOOKUPS)


async def system_resolve(host: str, port: int) -> list[IPAddress]:
    """The host's addresses from the system resolver (getaddrinfo in a thread)."""
    if not _lookups.acquire(blocking=False):
        raise OSError(f"{MAX_LOOKUPS} callback host lookups are still running")
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[list[Any]] = loop.create_future()

    def settle(result: list[Any] | None, error: BaseException | None) -> None:
        if answer.done():  # the vetting timed out meanwhile
            return
        if error is not None:
            answer.set_exception(error)
        else:
            answer.set_result(result or [])

    def lookup() -> None:
        result: list[Any] | None = None
        error: BaseException | None = None
        try:
            result = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except Exception as exc:  # noqa: BLE001 - handed to the waiting coroutine
            error = exc
        finally:
            _lookups.release()
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=lookup, name="callback-dns", daemon=True).start()
    infos = await answer
    found: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])
        if address not in found:
            found.append(address)
    return found


@dataclass(frozen=True, slots=True)
class VettedCallback:
    """A callback URL and the address to connect to for it."""

    target: CallbackTarget
    address: IPAddress


@dataclass(frozen=True, slots=True)
class CallbackVetter:
    allow_private: bool
    allow_http: bool
    dns_timeout_s: float
    resolve: Resolver = system_resolve

    @classmethod
    def of(cls, settings: Settings, *, resolve: Resolver = system_resolve) -> CallbackVetter:
        return cls(
            allow_private=settings.webhook_allow_private,
            allow_http=settings.webhook_allow_http,
            dns_timeout_s=settings.webhook_dns_timeout_s,
            resolve=resolve,
        )

    async def vet(self, url: object) -> VettedCallback:
        """The URL's target and the address to use; :class:`CallbackRefused` if none."""
        try:
            target = parse_callback_url(url, allow_http=self.allow_http)
        except ValueError as exc:
            raise CallbackRefused(str(exc)) from None
        if target.is_ip_literal:
            addresses: list[IPAddress] = [ipaddress.ip_address(target.host)]
        else:
            try:
                async with asyncio.timeout(self.dns_timeout_s):
                    addresses = await self.resolve(target.host, target.port)
            except TimeoutError:
                raise CallbackRefused(
                    f"callback_url host {target.host} did not resolve within "
                    f"{self.dns_timeout_s:g} s"
                ) from None
            except (OSError, UnicodeError) as exc:
                raise CallbackRefused(
                    f"callback_url host {target.host} does not resolve: {exc}"
                ) from None
        if not addresses:
            raise CallbackRefused(f"callback_url host {target.host} has no address")
        for address in addresses:  # every one: the host must not straddle the policy
            reason = refusal(address, allow_private=self.allow_private)
            if reason is not None:
                raise CallbackRefused(
                    f"callback_url host {target.host} is refused: {reason} (webhooks "
                    "reach public addresses only)"
                )
        return VettedCallback(target=target, address=addresses[0])
