"""Loopback ports for the embedded servers: free ones for tests, checked ones for ``up``."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Mapping

from shared.errors import EmbeddedStackError

LOOPBACK = "127.0.0.1"


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """``count`` distinct ports that are free right now.

    All sockets stay bound until every port is picked, so the kernel never hands out
    the same port twice; another process may still take one before our server binds
    it, which the server's start-up check then reports.
    """
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether a server could listen on ``host:port`` now.

    SO_REUSEADDR makes a port whose last connection is in TIME_WAIT count as free,
    as it does for the servers themselves.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def require_free_port(port: int, what: str, host: str = LOOPBACK) -> None:
    """Fail before starting anything when a requested port is taken."""
    if not 0 < port < 65536:
        raise EmbeddedStackError(f"{what} port {port} is not a valid TCP port")
    if not port_is_free(port, host):
        raise EmbeddedStackError(
            f"{what} port {host}:{port} is already in use (another broker or store, or an "
            f"earlier 'usage-export up' still running?)"
        )


def choose_ports(wanted: Mapping[str, int], host: str = LOOPBACK) -> dict[str, int]:
    """A distinct free port for each name: the wanted one when it is free, else (or when
    0 is wanted) any free one. For defaults that may be taken (``up``'s metrics ports);
    a port the user asked for explicitly is checked first with :func:`require_free_port`.
    """
    chosen: dict[str, int] = {}
    for name, port in wanted.items():
        if port and port not in chosen.values() and port_is_free(port, host):
            chosen[name] = port
    spare = iter(port for port in free_ports(len(wanted), host) if port not in chosen.values())
    return {name: chosen[name] if name in chosen else next(spare) for name in wanted}
