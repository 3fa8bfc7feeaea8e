"""Who is calling: the ``Authorization: Bearer`` key → its workspace, or why not.

Checking a key costs a store read and a scrypt hash, so outcomes — accepted *and*
refused — are remembered for ``api_key_cache_ttl_s``: a revoke takes effect within that
time, and a client retrying a wrong key does not cost a hash each time. The cache is
keyed by a SHA-256 of the presented key, never the key itself, and bounded.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from services.api.keys import USAGE_EXPORT_SCOPE, KeyStore, parse_key, secret_matches


@dataclass(frozen=True, slots=True)
class Principal:
    """An accepted key: the workspace it may export, and its id (for rate limits, logs)."""

    key_id: str
    org_id: str


class AuthFailure(Enum):
    """Why a request is refused with 401; the value is the message the caller sees."""

    MISSING = "Missing API key: send the header 'Authorization: Bearer YOUR_API_KEY'"
    INVALID = "Invalid API key"
    REVOKED = "This API key has been revoked"
    SCOPE = "This API key is not allowed to export usage data"

    @property
    def reason(self) -> str:
        """A short label for metrics."""
        return self.name.lower()


def bearer_token(authorization: str | None) -> str | None:
    """The token of ``Bearer <token>`` (scheme case-insensitive), else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


class KeyVerifier:
    """``await verifier.verify(request.headers.get("Authorization"))``."""

    def __init__(
        self,
        keys: KeyStore,
        *,
        ttl_s: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys = keys
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._cache: OrderedDict[bytes, tuple[float, Principal | AuthFailure]] = OrderedDict()

    async def verify(self, authorization: str | None) -> Principal | AuthFailure:
        token = bearer_token(authorization)
        if token is None:
            return AuthFailure.MISSING
        digest = hashlib.sha256(token.encode()).digest()
        now = self._clock()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        outcome = await self._check(token)
        self._remember(digest, now + self._ttl_s, outcome)
        return outcome

    def _remember(self, digest: bytes, until: float, outcome: Principal | AuthFailure) -> None:
        if self._ttl_s <= 0:
            return
        self._cache[digest] = (until, outcome)
        self._cache.move_to_end(digest)
        while len(self._cache) > self._max_entries:
            self._cache.popitem(last=False)

    async def _check(self, token: str) -> Principal | AuthFailure:
        parsed = parse_key(token)
        if parsed is None:
            return AuthFailure.INVALID
        record = await self._keys.get(parsed.key_id)
        if record is None:
            return AuthFailure.INVALID
        # scrypt takes tens of milliseconds: off the event loop.
        if not await asyncio.to_thread(secret_matches, record, parsed.secret):
            return AuthFailure.INVALID
        if not record.active:
            return AuthFailure.REVOKED
        if USAGE_EXPORT_SCOPE not in record.scopes:
            return AuthFailure.SCOPE
        return Principal(key_id=record.key_id, org_id=record.org_id)
