"""Free and busy loopback ports."""

from __future__ import annotations

import socket

import pytest

from shared.embedded.ports import free_ports, port_is_free, require_free_port
from shared.errors import EmbeddedStackError


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(10)
    assert len(set(ports)) == 10
    assert all(port_is_free(port) for port in ports)


def test_a_listening_port_is_busy_and_reported_clearly() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert not port_is_free(port)
        with pytest.raises(EmbeddedStackError, match=f"127.0.0.1:{port} is already in use"):
            require_free_port(port, "Kafka broker")


@pytest.mark.parametrize("port", [0, 70000])
def test_invalid_port_numbers_are_refused(port: int) -> None:
    with pytest.raises(EmbeddedStackError, match="not a valid TCP port"):
        require_free_port(port, "S3 store")
