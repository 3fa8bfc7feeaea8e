"""API keys of the HTTP API: one workspace, a set of scopes, stored only as salted hashes.

A key reads ``ue_<key_id>_<secret>``: ``key_id`` (16 hex characters) is not secret and
names the record ``api-keys/{key_id}.json`` in the aggregates bucket; ``secret`` (43
URL-safe characters, 256 bits) is never stored. The record holds a per-key random salt
and ``scrypt(secret, salt)``; a presented key is checked by recomputing the hash and
comparing with :func:`hmac.compare_digest`.

Why the object store and not a database: it is already the one durable store every
service reaches, keys are few and read rarely (the API caches them), and a conditional
write (``If-Match``) makes a revoke safe against a concurrent one.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from shared import codec
from shared.adapters.s3 import ObjectStore
from shared.clock import Clock, system_clock
from shared.contracts.ids import is_valid_id
from shared.errors import PreconditionFailed, UsageExportError

log = logging.getLogger(__name__)

KEYS_PREFIX = "api-keys/"
USAGE_EXPORT_SCOPE = "usage-export"
KEY_PREFIX = "ue"
_KEY_RE = re.compile(r"ue_([0-9a-f]{16})_([A-Za-z0-9_-]{43})", re.ASCII)
# scrypt with 16 MiB of memory: ~50 ms a check, cached afterwards (see KeyVerifier).
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


class ApiKeyError(UsageExportError):
    """A key operation that cannot be done (unknown key, wrong workspace)."""


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """What is stored of a key: never the secret itself."""

    key_id: str
    org_id: str
    scopes: tuple[str, ...]
    created_at: str
    salt: str
    hash: str
    name: str = ""
    revoked_at: str | None = None
    etag: str = field(default="", compare=False)

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_json(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "org_id": self.org_id,
            "scopes": list(self.scopes),
            "name": self.name,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
            "salt": self.salt,
            "hash": self.hash,
            "nonce": uuid.uuid4().hex,  # SeaweedFS's ETag is the body's MD5: never repeat it
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], etag: str = "") -> ApiKeyRecord:
        """Raises ValueError, KeyError or TypeError for a record that is not one."""
        bytes.fromhex(data["salt"]), bytes.fromhex(data["hash"])  # checked before any use
        return cls(
            key_id=str(data["key_id"]),
            org_id=str(data["org_id"]),
            scopes=tuple(str(scope) for scope in data.get("scopes", [])),
            name=str(data.get("name") or ""),
            created_at=str(data["created_at"]),
            revoked_at=data.get("revoked_at"),
            salt=str(data["salt"]),
            hash=str(data["hash"]),
            etag=etag,
        )


@dataclass(frozen=True, slots=True)
class ParsedKey:
    key_id: str
    secret: str


def parse_key(presented: str) -> ParsedKey | None:
    """The id and secret of a well-formed key, else None."""
    match = _KEY_RE.fullmatch(presented)
    if match is None:
        return None
    return ParsedKey(key_id=match.group(1), secret=match.group(2))


def hash_secret(secret: str, salt: bytes) -> str:
    return hashlib.scrypt(secret.encode(), salt=salt, **_SCRYPT).hex()


def secret_matches(record: ApiKeyRecord, secret: str) -> bool:
    expected = bytes.fromhex(record.hash)
    computed = bytes.fromhex(hash_secret(secret, bytes.fromhex(record.salt)))
    return hmac.compare_digest(expected, computed)


def new_key(
    org_id: str, *, scopes: tuple[str, ...], name: str = "", clock: Clock = system_clock
) -> tuple[str, ApiKeyRecord]:
    """A fresh key (shown once) and the record that stores it."""
    if not is_valid_id(org_id):
        raise ApiKeyError(f"{org_id!r} is not a valid workspace id")
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    created = clock().isoformat(timespec="seconds")
    record = ApiKeyRecord(
        key_id=key_id,
        org_id=org_id,
        scopes=scopes,
        name=name,
        created_at=created,
        salt=salt.hex(),
        hash=hash_secret(secret, salt),
    )
    return f"{KEY_PREFIX}_{key_id}_{secret}", record


def key_object(key_id: str) -> str:
    return f"{KEYS_PREFIX}{key_id}.json"


class KeyStore:
    """Key records in the object store (the aggregates bucket, prefix ``api-keys/``)."""

    def __init__(self, store: ObjectStore, *, clock: Clock = system_clock) -> None:
        self._store = store
        self._clock = clock

    async def create(
        self,
        org_id: str,
        *,
        scopes: tuple[str, ...] = (USAGE_EXPORT_SCOPE,),
        name: str = "",
    ) -> tuple[str, ApiKeyRecord]:
        """Store a new key; returns the key (its only appearance) and its record."""
        key, record = new_key(org_id, scopes=scopes, name=name, clock=self._clock)
        etag = await self._store.put(
            key_object(record.key_id), codec.dumps(record.to_json()), if_none_match=True
        )
        return key, replace(record, etag=etag)

    async def get(self, key_id: str) -> ApiKeyRecord | None:
        stored = await self._store.get(key_object(key_id))
        if stored is None:
            return None
        try:
            return ApiKeyRecord.from_json(codec.loads(stored.body), stored.etag)
        except (ValueError, KeyError, TypeError):
            # A corrupt record authenticates nobody and must not break `keys list`.
            log.warning("unreadable API key record %s: ignored", key_id)
            return None

    async def list_for(self, org_id: str) -> list[ApiKeyRecord]:
        """Every key of ``org_id``, oldest first (revoked ones included)."""
        found = []
        for item in await self._store.list_objects(KEYS_PREFIX):
            key_id = str(item["Key"]).removeprefix(KEYS_PREFIX).removesuffix(".json")
            record = await self.get(key_id)
            if record is not None and record.org_id == org_id:
                found.append(record)
        return sorted(found, key=lambda record: (record.created_at, record.key_id))

    async def revoke(self, org_id: str, key_id: str) -> ApiKeyRecord:
        """Mark a key revoked (idempotent); only a key of ``org_id`` can be revoked here."""
        for _ in range(5):
            record = await self.get(key_id)
            if record is None or record.org_id != org_id:
                raise ApiKeyError(f"workspace {org_id} has no key {key_id}")
            if not record.active:
                return record
            revoked = replace(record, revoked_at=self._clock().isoformat(timespec="seconds"))
            try:
                etag = await self._store.put(
                    key_object(key_id), codec.dumps(revoked.to_json()), if_match=record.etag
                )
            except PreconditionFailed:
                continue  # changed meanwhile: read it again
            return replace(revoked, etag=etag)
        raise PreconditionFailed(f"key {key_id} kept changing")
