"""Readiness checks for :class:`ObservabilityServer`: is a dependency usable right now?

Each check is cheap and goes around the adapters' retries (a probe wants the present
state, not a minute of backoff): a TCP connection to a bootstrap broker, a HeadBucket on
the store. They raise with a reason an operator can act on; the server adds a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping

from shared.adapters.object_store import ObjectStore
from shared.observability.server import ReadinessCheck


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.strip().rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"not host:port: {address!r}")
    return host.strip("[]"), int(port)


async def tcp_reachable(addresses: str, *, timeout_s: float = 1.5) -> None:
    """Returns once any of the comma-separated ``host:port`` accepts a TCP connection."""
    failures = []
    for address in filter(None, (item.strip() for item in addresses.split(","))):
        host, port = _host_port(address)
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
        except (OSError, TimeoutError) as exc:
            failures.append(f"{address}: {exc or type(exc).__name__}")
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return
    raise ConnectionError("; ".join(failures) or "no address given")


def broker_check(bootstrap: str) -> ReadinessCheck:
    """Ready when a bootstrap broker accepts connections (``USAGE_KAFKA_BOOTSTRAP``)."""

    async def check() -> None:
        await tcp_reachable(bootstrap)

    return check


def store_check(store: ObjectStore) -> ReadinessCheck:
    """Ready when the store answers a HeadBucket for the store's bucket (started store)."""

    async def check() -> None:
        await store.check_bucket()

    return check


def flag_check(is_ready: Callable[[], bool], reason: str) -> ReadinessCheck:
    """Ready while ``is_ready()`` is true, e.g. "partitions assigned" or "not draining"."""

    async def check() -> None:
        if not is_ready():
            raise RuntimeError(reason)

    return check


def service_checks(
    bootstrap: str, stores: Mapping[str, ObjectStore], stop: asyncio.Event
) -> dict[str, ReadinessCheck]:
    """A service's usual checks: the broker, each named store, and "not draining"."""
    checks = {"broker": broker_check(bootstrap)}
    checks.update({name: store_check(store) for name, store in stores.items()})
    checks["not draining"] = flag_check(lambda: not stop.is_set(), "draining before exit")
    return checks
