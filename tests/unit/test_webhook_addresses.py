"""The SSRF policy of webhooks, address class by address class, IPv4, IPv6 and IPv4
carried in IPv6."""

from __future__ import annotations

import ipaddress

import pytest

from shared.domain.webhooks.addresses import refusal

PUBLIC = [
    "93.184.216.34",
    "8.8.8.8",
    "2606:4700:4700::1111",
    "::ffff:8.8.8.8",
    "2002:808:808::1",
    "192.0.0.9",  # global anycast inside 192.0.0.0/24
    "192.0.0.10",
]
#: Refused unless private addresses are allowed: (address, what the reason says).
PRIVATE = [
    ("127.0.0.1", "loopback"),
    ("127.255.0.9", "loopback"),
    ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"),
    ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("::ffff:192.168.1.1", "private"),
    ("2002:c0a8:101::1", "private"),  # 6to4 of 192.168.1.1
    ("169.254.1.1", "link-local"),
    ("fe80::1", "link-local"),
    ("fc00::1", "unique-local"),
    ("fd12:3456::1", "unique-local"),
    ("100.64.0.1", "not a public"),  # shared address space (CGNAT)
    ("192.0.2.1", "private"),  # documentation
    ("2001:db8::1", "private"),  # documentation
    ("198.18.0.1", "private"),  # benchmarking
    # Not global, yet Python 3.11 calls them global:
    ("fec0::1", "site-local"),  # deprecated site-local fec0::/10, the docstring's promise
    ("feff::1", "site-local"),
    ("192.0.0.8", "not a public"),  # IETF protocol assignments 192.0.0.0/24
    ("::ffff:192.0.0.8", "not a public"),
    ("3fff::1", "not a public"),  # documentation (RFC 9637)
]
#: Refused even when private addresses are allowed.
ALWAYS = [
    ("169.254.169.254", "metadata"),
    ("::ffff:169.254.169.254", "metadata"),
    ("fd00:ec2::254", "metadata"),
    ("100.100.100.200", "metadata"),
    ("192.0.0.192", "metadata"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("::ffff:224.0.0.1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
]


@pytest.mark.parametrize("text", PUBLIC)
def test_public_addresses_are_allowed(text: str) -> None:
    assert refusal(ipaddress.ip_address(text), allow_private=False) is None


@pytest.mark.parametrize(("text", "reason"), PRIVATE)
def test_private_classes_are_refused_unless_allowed(text: str, reason: str) -> None:
    address = ipaddress.ip_address(text)
    refused = refusal(address, allow_private=False)
    assert refused is not None
    assert reason in refused
    assert refusal(address, allow_private=True) is None


@pytest.mark.parametrize(("text", "reason"), ALWAYS)
def test_metadata_multicast_and_reserved_are_always_refused(text: str, reason: str) -> None:
    address = ipaddress.ip_address(text)
    for allow_private in (False, True):
        refused = refusal(address, allow_private=allow_private)
        assert refused is not None
        assert reason in refused
