"""API keys of the HTTP API: one workspace, a set of scopes, stored only as keyed hashes.

A key reads ``ue_<key_id>_<secret>``: ``key_id`` (16 hex characters) is not secret and
names the record ``api-keys/{key_id}.json`` in the aggregates bucket; ``secret`` (43
URL-safe characters, 256 bits) is never stored. The record holds
``HMAC-SHA-256(pepper, key_id, org_id, scopes, secret)``, where the pepper is a
server-side secret (``USAGE_API_KEY_PEPPER``, see :func:`pepper_of`); a presented key
is checked by recomputing it and comparing with :func:`hmac.compare_digest`.

Why a keyed fast hash and not scrypt (docs/decisions.md): the secrets are 256-bit
random, so no guessing is helped by a slow hash, while each wrong secret cost ~70 ms of
CPU; the HMAC costs microseconds. The pepper means a copy of the records cannot be
checked offline, and write access to the store alone cannot mint a key or move one to
another workspace or scope: those fields are inside the MAC. Records of the retired
scrypt scheme authenticate nobody (a clear log line says so; ``keys list`` marks them).

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
from shared.adapters.object_store import ObjectStore
from shared.clock import Clock, system_clock
from shared.contracts.ids import is_valid_id
from shared.errors import ConfigurationError, PreconditionFailed, UsageExportError
from shared.settings import Settings

log = logging.getLogger(__name__)

KEYS_PREFIX = "api-keys/"
USAGE_EXPORT_SCOPE = "usage-export"
KEY_PREFIX = "ue"
HASH_SCHEME = "hmac-sha256"
RETIRED_SCHEME = "scrypt"  # records written before issue 13 have no "scheme" field
KEY_ID_RULE = "16 lowercase hex characters (as `keys create` and `keys list` show it)"
_KEY_ID_RE = re.compile(r"[0-9a-f]{16}", re.ASCII)
_KEY_RE = re.compile(r"ue_([0-9a-f]{16})_([A-Za-z0-9_-]{43})", re.ASCII)
_DERIVED_PEPPER_LABEL = b"usage-export api-key pepper v1"
_PEPPER_ID_LABEL = b"usage-export pepper id"


class ApiKeyError(UsageExportError):
    """A key operation that cannot be done (unknown key, wrong workspace, bad key id)."""


@dataclass(frozen=True, slots=True)
class Pepper:
    """The server-side secret of the key hashes, and a public id naming it in records (so
    a changed pepper is reported as such, not as wrong secrets)."""

    secret: bytes = field(repr=False)

    @property
    def pepper_id(self) -> str:
        return hmac.new(self.secret, _PEPPER_ID_LABEL, hashlib.sha256).hexdigest()[:16]


class PepperUnset(ConfigurationError):
    """Neither ``USAGE_API_KEY_PEPPER`` nor ``USAGE_S3_SECRET_KEY`` is set."""


def pepper_of(settings: Settings) -> Pepper:
    """``USAGE_API_KEY_PEPPER``; when empty, one derived from ``USAGE_S3_SECRET_KEY``.

    The derived pepper needs no provisioning: every process that reaches the store (the
    API, ``keys create``, ``up`` and its ``usage.env``) derives the same one, and it is as
    secret as the store's key. Production sets its own, so that rotating the store's
    credentials does not invalidate every API key."""
    explicit = settings.api_key_pepper.get_secret_value()
    if explicit:
        return Pepper(explicit.encode())
    if settings.s3_secret_key is None:  # the store's default credential chain: no secret
        raise PepperUnset(
            "set USAGE_API_KEY_PEPPER: with no USAGE_S3_SECRET_KEY (the default AWS "
            "credential chain) there is no store secret to derive the API keys' pepper from"
        )
    store_secret = settings.s3_secret_key.get_secret_value().encode()
    return Pepper(hmac.new(store_secret, _DERIVED_PEPPER_LABEL, hashlib.sha256).digest())


def is_key_id(value: str) -> bool:
    return _KEY_ID_RE.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """What is stored of a key: never the secret itself."""

    key_id: str
    org_id: str
    scopes: tuple[str, ...]
    created_at: str
    hash: str
    name: str = ""
    revoked_at: str | None = None
    scheme: str = HASH_SCHEME
    pepper_id: str = ""
    salt: str = ""  # the retired scrypt scheme's; kept so that a revoke preserves it
    etag: str = field(default="", compare=False)

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "key_id": self.key_id,
            "org_id": self.org_id,
            "scopes": list(self.scopes),
            "name": self.name,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
            "scheme": self.scheme,
            "pepper_id": self.pepper_id,
            "hash": self.hash,
            "nonce": uuid.uuid4().hex,  # SeaweedFS's ETag is the body's MD5: never repeat it
        }
        if self.salt:
            data["salt"] = self.salt
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], etag: str = "") -> ApiKeyRecord:
        """Raises ValueError, KeyError or TypeError for a record that is not one."""
        bytes.fromhex(data["hash"])  # checked before any use
        key_id = str(data["key_id"])
        if not is_key_id(key_id):
            raise ValueError(f"{key_id!r} is not a key id")
        return cls(
            key_id=key_id,
            org_id=str(data["org_id"]),
            scopes=tuple(str(scope) for scope in data.get("scopes", [])),
            name=str(data.get("name") or ""),
            created_at=str(data["created_at"]),
            revoked_at=data.get("revoked_at"),
            scheme=str(data.get("scheme") or RETIRED_SCHEME),
            pepper_id=str(data.get("pepper_id") or ""),
            salt=str(data.get("salt") or ""),
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


def hash_secret(
    pepper: Pepper, *, key_id: str, org_id: str, scopes: tuple[str, ...], secret: str
) -> str:
    """The MAC of everything a key grants: changing the workspace or scopes of a record
    without the pepper makes it match no secret. (Ids and scopes hold no NUL.)"""
    message = "\0".join((HASH_SCHEME, key_id, org_id, ",".join(scopes), secret))
    return hmac.new(pepper.secret, message.encode(), hashlib.sha256).hexdigest()


def unusable_reason(record: ApiKeyRecord, pepper: Pepper) -> str | None:
    """Why no secret can match ``record`` here (an operator's problem), else None."""
    if record.scheme != HASH_SCHEME:
        return (
            f"API key {record.key_id} is stored with the retired {record.scheme!r} scheme and "
            "authenticates nobody: revoke it and create a new key (usage-export keys create)"
        )
    if record.pepper_id != pepper.pepper_id:
        return (
            f"API key {record.key_id} was hashed with another pepper (id {record.pepper_id}, "
            f"this process has {pepper.pepper_id}): USAGE_API_KEY_PEPPER (or, when unset, "
            "USAGE_S3_SECRET_KEY) differs from when the key was created"
        )
    return None


def secret_matches(record: ApiKeyRecord, secret: str, pepper: Pepper) -> bool:
    """Whether ``secret`` is the key's (False for an unusable record: see
    :func:`unusable_reason`)."""
    if unusable_reason(record, pepper) is not None:
        return False
    computed = hash_secret(
        pepper, key_id=record.key_id, org_id=record.org_id, scopes=record.scopes, secret=secret
    )
    return hmac.compare_digest(bytes.fromhex(record.hash), bytes.fromhex(computed))


def new_key(
    org_id: str,
    *,
    scopes: tuple[str, ...],
    pepper: Pepper,
    name: str = "",
    clock: Clock = system_clock,
) -> tuple[str, ApiKeyRecord]:
    """A fresh key (shown once) and the record that stores it."""
    if not is_valid_id(org_id):
        raise ApiKeyError(f"{org_id!r} is not a valid workspace id")
    for scope in scopes:
        if not is_valid_id(scope):
            raise ApiKeyError(f"{scope!r} is not a valid scope")
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    created = clock().isoformat(timespec="seconds")
    record = ApiKeyRecord(
        key_id=key_id,
        org_id=org_id,
        scopes=scopes,
        name=name,
        created_at=created,
        pepper_id=pepper.pepper_id,
        hash=hash_secret(pepper, key_id=key_id, org_id=org_id, scopes=scopes, secret=secret),
    )
    return f"{KEY_PREFIX}_{key_id}_{secret}", record


def key_object(key_id: str) -> str:
    """The record's object key; raises :class:`ApiKeyError` for anything but a key id."""
    if not is_key_id(key_id):
        raise ApiKeyError(f"{key_id!r} is not a key id: a key id is {KEY_ID_RULE}")
    return f"{KEYS_PREFIX}{key_id}.json"


class KeyStore:
    """Key records in the object store (the aggregates bucket, prefix ``api-keys/``)."""

    def __init__(self, store: ObjectStore, *, pepper: Pepper, clock: Clock = system_clock) -> None:
        self._store = store
        self.pepper = pepper
        self._clock = clock

    async def create(
        self,
        org_id: str,
        *,
        scopes: tuple[str, ...] = (USAGE_EXPORT_SCOPE,),
        name: str = "",
    ) -> tuple[str, ApiKeyRecord]:
        """Store a new key; returns the key (its only appearance) and its record."""
        key, record = new_key(
            org_id, scopes=scopes, pepper=self.pepper, name=name, clock=self._clock
        )
        etag = await self._store.put(
            key_object(record.key_id), codec.dumps(record.to_json()), if_none_match=True
        )
        return key, replace(record, etag=etag)

    async def get(self, key_id: str) -> ApiKeyRecord | None:
        """The key's record; None for a missing or unreadable one, or a bad key id."""
        if not is_key_id(key_id):
            return None
        stored = await self._store.get(key_object(key_id))
        if stored is None:
            return None
        try:
            record = ApiKeyRecord.from_json(codec.loads(stored.body), stored.etag)
        except (ValueError, KeyError, TypeError):
            # A corrupt record authenticates nobody and must not break `keys list`.
            log.warning("unreadable API key record %s: ignored", key_id)
            return None
        if record.key_id != key_id:
            log.warning("API key record %s names key %s: ignored", key_id, record.key_id)
            return None
        return record

    def matches(self, record: ApiKeyRecord, secret: str) -> bool:
        """Whether ``secret`` is the key's; an unusable record (retired scheme, another
        pepper) matches nothing and says why in the log."""
        reason = unusable_reason(record, self.pepper)
        if reason is not None:
            log.warning("%s", reason)
            return False
        return secret_matches(record, secret, self.pepper)

    async def list_for(self, org_id: str) -> list[ApiKeyRecord]:
        """Every key of ``org_id``, oldest first (revoked ones included)."""
        found = []
        for item in await self._store.list_objects(KEYS_PREFIX):
            key_id = item.key.removeprefix(KEYS_PREFIX).removesuffix(".json")
            record = await self.get(key_id)
            if record is not None and record.org_id == org_id:
                found.append(record)
        return sorted(found, key=lambda record: (record.created_at, record.key_id))

    async def revoke(self, org_id: str, key_id: str) -> ApiKeyRecord:
        """Mark a key revoked (idempotent); only a key of ``org_id`` can be revoked here.
        Raises :class:`ApiKeyError` for a key id of another shape, before any store call."""
        key_object(key_id)
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
