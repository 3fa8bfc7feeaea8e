"""Webhook signing secrets, one record per workspace: ``webhook-secrets/{org_id}.json``
in the aggregates bucket (beside ``api-keys/``).

Unlike an API key a signing secret must be read back to sign, so the record holds it as
is: read access to this prefix is read access to the secrets (docs/security.md).
``usage-export webhooks secret --org ORG`` creates or rotates it (conditional writes:
two rotations racing do not lose a secret); after a rotation the previous secret keeps
signing for ``USAGE_WEBHOOK_SECRET_OVERLAP_S``, so every delivery carries two ``v1=``
values meanwhile and receivers can switch at their pace.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared import codec
from shared.adapters.object_store import ObjectStore
from shared.contracts.ids import is_valid_id
from shared.errors import PreconditionFailed

SECRETS_PREFIX = "webhook-secrets/"
SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of every secret, not one
RECORD_SCHEMA = 1


def secrets_key(org_id: str) -> str:
    if not is_valid_id(org_id):
        raise ValueError(f"refusing to build an object key from org id {org_id!r}")
    return f"{SECRETS_PREFIX}{org_id}.json"


@dataclass(frozen=True, slots=True)
class SigningSecret:
    secret: str
    created_at: datetime
    retires_at: datetime | None = None  # None: the current secret

    def signs_at(self, now: datetime) -> bool:
        return self.retires_at is None or now < self.retires_at

    def to_json(self) -> dict[str, Any]:
        return {
            "secret": self.secret,
            "created_at": self.created_at.isoformat(),
            "retires_at": None if self.retires_at is None else self.retires_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SigningSecret:
        retires = data.get("retires_at")
        return cls(
            secret=str(data["secret"]),
            created_at=datetime.fromisoformat(data["created_at"]),
            retires_at=None if retires is None else datetime.fromisoformat(retires),
        )


def rotated(
    current: list[SigningSecret], now: datetime, overlap_s: float, fresh: str
) -> list[SigningSecret]:
    """``fresh`` first, then the previous current one retiring after the overlap; every
    older one is dropped (a delivery carries at most two ``v1=``, contract §4a, and a
    rotation after a leak ends the secrets before it)."""
    kept = [
        SigningSecret(secret.secret, secret.created_at, now + timedelta(seconds=overlap_s))
        for secret in current
        if secret.retires_at is None
    ]
    return [SigningSecret(fresh, now), *(secret for secret in kept if secret.signs_at(now))]


class WebhookSecrets:
    """The workspaces' signing secrets in one bucket."""

    def __init__(self, store: ObjectStore, *, overlap_s: float) -> None:
        self._store = store
        self._overlap_s = overlap_s

    async def _read(self, org_id: str) -> tuple[list[SigningSecret], str | None]:
        stored = await self._store.get(secrets_key(org_id))
        if stored is None:
            return [], None
        data = codec.loads(stored.body)
        return [SigningSecret.from_json(item) for item in data["secrets"]], stored.etag

    async def rotate(self, org_id: str, now: datetime) -> str:
        """Create the workspace's secret, or replace it (the old one signs for the
        overlap); returns the new secret, its only appearance."""
        fresh = SECRET_PREFIX + secrets.token_urlsafe(32)
        for _ in range(5):
            current, etag = await self._read(org_id)
            record = {
                "schema": RECORD_SCHEMA,
                "org_id": org_id,
                "secrets": [s.to_json() for s in rotated(current, now, self._overlap_s, fresh)],
                "nonce": uuid.uuid4().hex,  # SeaweedFS's ETag is the body's MD5
            }
            try:
                await self._store.put(
                    secrets_key(org_id),
                    codec.dumps(record),
                    if_match=etag,
                    if_none_match=etag is None,
                )
            except PreconditionFailed:
                continue  # rotated concurrently: rotate theirs
            return fresh
        raise PreconditionFailed(f"webhook secrets of {org_id} kept changing")

    async def signing(self, org_id: str, now: datetime) -> list[str]:
        """The secrets that sign now, newest first; [] when the workspace has none."""
        current, _ = await self._read(org_id)
        return [secret.secret for secret in current if secret.signs_at(now)]
