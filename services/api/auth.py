"""Who is calling: the ``Authorization: Bearer`` key → its workspace, or why not.

Checking a key costs a store read and an HMAC (microseconds; ``keys.py`` says why not
scrypt), so outcomes — accepted *and* refused — are remembered for
``api_key_cache_ttl_s``: a revoke takes effect within that time. The cache is keyed by a
SHA-256 of the presented key, never the key itself, and bounded.

A check that is not in the cache first passes the :class:`AuthThrottle`: a key id or a
client address with too many failed checks is answered 429 before any store read or
hash, and only so many checks run at once; the same key presented by concurrent
requests is checked once for all of them. A key whose secret was proven right before
(remembered by digest, bounded) skips the failure limits, so an attacker who knows a key
id and sends it wrong secrets cannot lock out the client that holds the real one.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from services.api.auth_throttle import AuthThrottle, Throttled
from services.api.keys import (
    USAGE_EXPORT_SCOPE,
    ApiKeyRecord,
    KeyStore,
    ParsedKey,
    parse_key,
    pepper_of,
)
from shared.adapters.object_store import ObjectStore
from shared.lru import LruMap
from shared.settings import Settings

__all__ = ["AuthFailure", "KeyVerifier", "Principal", "Throttled", "key_verifier"]


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


class Keys(Protocol):
    """What the verifier needs of :class:`~services.api.keys.KeyStore`."""

    async def get(self, key_id: str) -> ApiKeyRecord | None: ...

    def matches(self, record: ApiKeyRecord, secret: str) -> bool: ...


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
    """``await verifier.verify(request.headers.get("Authorization"), request.remote)``."""

    def __init__(
        self,
        keys: Keys,
        *,
        ttl_s: float,
        throttle: AuthThrottle,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys = keys
        self._ttl_s = ttl_s
        self._throttle = throttle
        self._clock = clock
        self._cache: LruMap[bytes, tuple[float, Principal | AuthFailure]] = LruMap(max_entries)
        self._proven: LruMap[bytes, None] = LruMap(max_entries)
        self._checking: dict[bytes, asyncio.Future[Principal | AuthFailure | Throttled]] = {}

    async def verify(
        self, authorization: str | None, client: str | None = None
    ) -> Principal | AuthFailure | Throttled:
        token = bearer_token(authorization)
        if token is None:
            return AuthFailure.MISSING
        digest = hashlib.sha256(token.encode()).digest()
        now = self._clock()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        parsed = parse_key(token)
        if parsed is None:
            self._remember(digest, now + self._ttl_s, AuthFailure.INVALID)
            return AuthFailure.INVALID  # no store read, no hash
        # The same key, presented at once: one check answers all (unless it is cancelled).
        while (running := self._checking.get(digest)) is not None:
            await asyncio.wait([running])
            if not running.cancelled():
                return running.result()
        future: asyncio.Future[Principal | AuthFailure | Throttled]
        future = asyncio.get_running_loop().create_future()
        self._checking[digest] = future
        try:
            outcome = await self._limited_check(parsed, digest, client)
            if not isinstance(outcome, Throttled):
                self._remember(digest, now + self._ttl_s, outcome)
            future.set_result(outcome)
            return outcome
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning without sharers
            raise
        finally:
            del self._checking[digest]

    async def _limited_check(
        self, parsed: ParsedKey, digest: bytes, client: str | None
    ) -> Principal | AuthFailure | Throttled:
        proven = digest in self._proven
        if not proven:
            refused = self._throttle.take(parsed.key_id, client)
            if refused is not None:
                return refused
        async with self._throttle.checking():
            outcome = await self._check(parsed)
        if outcome is not AuthFailure.INVALID:  # the secret was right
            if not proven:
                self._throttle.refund(parsed.key_id, client)
            self._proven.put(digest, None)
        return outcome

    def _remember(self, digest: bytes, until: float, outcome: Principal | AuthFailure) -> None:
        if self._ttl_s <= 0:
            return
        self._cache.put(digest, (until, outcome))

    async def _check(self, parsed: ParsedKey) -> Principal | AuthFailure:
        record = await self._keys.get(parsed.key_id)
        if record is None or not self._keys.matches(record, parsed.secret):
            return AuthFailure.INVALID
        if not record.active:
            return AuthFailure.REVOKED
        if USAGE_EXPORT_SCOPE not in record.scopes:
            return AuthFailure.SCOPE
        return Principal(key_id=record.key_id, org_id=record.org_id)


def key_verifier(settings: Settings, aggregates: ObjectStore) -> KeyVerifier:
    """The API's verifier: keys in ``aggregates``, limits and pepper from ``settings``."""
    return KeyVerifier(
        KeyStore(aggregates, pepper=pepper_of(settings)),
        ttl_s=settings.api_key_cache_ttl_s,
        throttle=AuthThrottle.from_settings(settings),
    )
