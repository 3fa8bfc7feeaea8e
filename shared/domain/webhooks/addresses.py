"""Which addresses a webhook may connect to (SSRF policy, docs/security.md).

Refused always: cloud metadata endpoints, unspecified, multicast, reserved and
broadcast addresses. Refused unless private addresses are allowed
(``USAGE_WEBHOOK_ALLOW_PRIVATE``): loopback, private (RFC 1918), shared (CGNAT,
100.64/10), link-local, unique-local (fc00::/7), site-local and every other address
Python does not call global. IPv4 inside IPv6 (mapped ``::ffff:a.b.c.d``, NAT64
``64:ff9b::/96``, 6to4 ``2002::/16``) is judged as the IPv4 address it carries.
"""

from __future__ import annotations

import ipaddress
from typing import Final

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Instance metadata services (AWS, GCP, Azure, OpenStack: 169.254.169.254; AWS IPv6;
#: Alibaba; Oracle's 192.0.0.192), refused even when private addresses are allowed.
METADATA_ADDRESSES: Final = frozenset(
    ipaddress.ip_address(text)
    for text in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")
_SITE_LOCAL: Final = ipaddress.ip_network("fec0::/10")
#: Not globally reachable (IANA special-purpose registries) though Python 3.11's
#: ``is_global`` says they are: IETF protocol assignments but for the two global anycast
#: addresses in it, and IPv6 documentation (RFC 9637).
_NOT_GLOBAL: Final = (
    ipaddress.ip_network("192.0.0.0/24"),
    ipaddress.ip_network("3fff::/20"),
)
_GLOBAL_EXCEPTIONS: Final = frozenset(
    ipaddress.ip_address(text) for text in ("192.0.0.9", "192.0.0.10")
)


def embedded_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4), else itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if address.sixtofour is not None:
            return address.sixtofour
    return address


def refusal(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why a webhook must not connect to ``address``, or None when it may."""
    inner = embedded_ipv4(address)
    for candidate in {address, inner}:
        if candidate in METADATA_ADDRESSES:
            return f"{address} is a cloud metadata address"
        if candidate.is_unspecified:
            return f"{address} is the unspecified address"
        if candidate.is_multicast:
            return f"{address} is a multicast address"
    # Judged on the carried address: IPv6's reserved ::/8 holds ::1 and the mapped range.
    if inner.is_reserved and not inner.is_loopback:
        return f"{address} is a reserved address"  # 240/4 with broadcast, IETF-reserved
    if allow_private:
        return None
    if inner.is_loopback:
        return f"{address} is a loopback address"
    if inner.is_link_local:
        return f"{address} is a link-local address"
    if isinstance(inner, ipaddress.IPv6Address) and inner in ipaddress.ip_network("fc00::/7"):
        return f"{address} is a unique-local address"
    if isinstance(inner, ipaddress.IPv6Address) and inner in _SITE_LOCAL:
        return f"{address} is a site-local address"
    if inner.is_private:
        return f"{address} is a private address"
    if inner in _GLOBAL_EXCEPTIONS:
        return None
    # documentation, benchmarking, CGNAT, Teredo, ...
    if not inner.is_global or any(inner in network for network in _NOT_GLOBAL):
        return f"{address} is not a public address"
    return None
