"""The shape of a ``callback_url`` (before any DNS): absolute https (http only when
allowed), a host, no user info, no fragment, at most 2048 characters."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final
from urllib.parse import SplitResult, urlsplit

MAX_CALLBACK_URL_CHARS: Final = 2048


@dataclass(frozen=True, slots=True)
class CallbackTarget:
    """A callback URL that passed the shape checks: where to resolve and connect."""

    url: str
    host: str  # without brackets for IPv6 literals
    port: int
    is_ip_literal: bool


def _split(url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise ValueError(f"callback_url {url!r} is not a URL: {exc}") from None
    return parts


def parse_callback_url(url: object, *, allow_http: bool) -> CallbackTarget:
    """The target of a callback URL; ValueError says what is wrong with it."""
    if not isinstance(url, str):
        raise ValueError(f"callback_url must be a string URL, not {type(url).__name__}")
    if len(url) > MAX_CALLBACK_URL_CHARS:
        raise ValueError(f"callback_url is longer than {MAX_CALLBACK_URL_CHARS} characters")
    if not url.isascii() or any(char.isspace() or ord(char) < 0x20 for char in url):
        raise ValueError(
            "callback_url must be ASCII without spaces (IDNA-encode the host, "
            "percent-encode the path)"
        )
    parts = _split(url)
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes:
        raise ValueError(
            f"callback_url {url!r} must use {' or '.join(schemes)}"
            + ("" if allow_http else " (http is not allowed here)")
        )
    if not parts.hostname:
        raise ValueError(f"callback_url {url!r} has no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("callback_url must not carry user info (user:password@)")
    if parts.fragment:
        raise ValueError("callback_url must not have a fragment (#...)")
    host = parts.hostname
    try:
        ipaddress.ip_address(host)
        literal = True
    except ValueError:
        literal = False
    if parts.port == 0:
        raise ValueError(f"callback_url {url!r} names port 0")
    port = parts.port if parts.port is not None else (443 if parts.scheme == "https" else 80)
    return CallbackTarget(url=url, host=host, port=port, is_ip_literal=literal)
