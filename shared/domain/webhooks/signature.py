"""``Usage-Export-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>]``.

Each ``v1`` is ``HMAC-SHA256(secret, f"{t}.{body}")`` in lowercase hex, one per secret
that signs (two during a rotation's overlap: the new one first). A receiver accepts the
body when any ``v1`` matches the MAC it computes with its secret and ``t`` is within its
tolerance of its clock (replays of an old delivery are refused).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

SIGNATURE_HEADER = "Usage-Export-Signature"
REQUEST_ID_HEADER = "Usage-Export-Request-Id"
SCHEME = "v1"


def mac(body: bytes, secret: str, t: int) -> str:
    """The hex HMAC-SHA256 of ``"<t>.<body>"`` keyed by ``secret`` (its UTF-8 bytes)."""
    return hmac.new(secret.encode(), str(t).encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(body: bytes, secrets: Sequence[str], t: int) -> str:
    """The header value: ``t=<t>`` then one ``v1=`` per secret, in the order given."""
    if not secrets:
        raise ValueError("a signature needs at least one secret")
    return ",".join([f"t={t}", *(f"{SCHEME}={mac(body, secret, t)}" for secret in secrets)])


def parse(header: str) -> tuple[int, list[str]] | None:
    """``(t, [v1 values])`` of a header, or None when it is not one."""
    t: int | None = None
    values: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            return None
        if name == "t":
            if not value.isascii() or not value.isdigit():
                return None
            t = int(value)
        elif name == SCHEME:
            values.append(value)
    if t is None or not values:
        return None
    return t, values


def verify(header: str, body: bytes, secret: str, now: int, tolerance_s: int = 300) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` at a ``t`` within ``tolerance_s``
    of ``now`` (unix seconds)."""
    parsed = parse(header)
    if parsed is None:
        return False
    t, values = parsed
    if abs(now - t) > tolerance_s:
        return False
    expected = mac(body, secret, t)
    return any(hmac.compare_digest(expected, value) for value in values)
