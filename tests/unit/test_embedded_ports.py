"""Free and busy loopback ports."""

from __future__ import annotations

import socket

import pytest

from shared.embedded.ports import choose_ports, free_ports, port_is_free, require_free_port
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


def test_chosen_ports_keep_free_defaults_and_replace_busy_ones_and_zeros() -> None:
    kept = free_ports(1)[0]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        chosen = choose_ports({"ingest": taken, "exporter": kept, "api": 0, "again": kept})
    assert chosen["exporter"] == kept
    assert chosen["ingest"] != taken
    assert len(set(chosen.values())) == 4  # a port wanted twice is given once
    assert all(port > 0 for port in chosen.values())
