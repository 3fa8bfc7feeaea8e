"""Pending, delivered and dead webhook deliveries: objects in the exports bucket.

``webhooks/pending/{org}/{request_id}.{digest}.json`` is one delivery to make, created
with ``If-None-Match: *`` (``digest``: the first 16 hex characters of the body's SHA-256,
so a completion read twice makes one delivery, and a later, different completion of the
same request makes another). A replica that tries it first *claims* it: an ``If-Match``
write that counts the attempt and sets a lease, so two replicas never try it at once
and a replica that dies mid-try leaves it to be claimed again once the lease ends. A 2xx
writes ``webhooks/delivered/...`` (a small marker, checked before a new pending one is
made) and deletes the pending object; running out of time moves it to
``webhooks/dead/...`` with the last error.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from shared import codec
from shared.adapters.object_store import ObjectStore
from shared.contracts.ids import is_valid_id
from shared.domain.window import to_ms
from shared.errors import PreconditionFailed, StoreRefused

log = logging.getLogger(__name__)

PENDING_PREFIX = "webhooks/pending/"
DELIVERED_PREFIX = "webhooks/delivered/"
DEAD_PREFIX = "webhooks/dead/"
#: The due time cached for a malformed pending object: never, until it changes.
_NEVER_MS = 2**62
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def instant(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:16]


def delivery_name(org_id: str, request_id: str, digest: str) -> str:
    """``{org}/{request_id}.{digest}.json`` below each prefix (ids validated first)."""
    for name, value in (("org id", org_id), ("request id", request_id)):
        if not is_valid_id(value):
            raise ValueError(f"refusing to build an object key from {name} {value!r}")
    return f"{org_id}/{request_id}.{digest}.json"


@dataclass(frozen=True, slots=True)
class PendingDelivery:
    org_id: str
    request_id: str
    digest: str
    callback_url: str
    body: bytes
    created_ms: int
    attempts: int = 0
    next_attempt_ms: int = 0
    lease_until_ms: int = 0
    last_error: str | None = None
    etag: str = ""

    @property
    def name(self) -> str:
        return delivery_name(self.org_id, self.request_id, self.digest)

    @property
    def key(self) -> str:
        return PENDING_PREFIX + self.name

    def due_ms(self) -> int:
        """When it may be tried: its next attempt, or when a claim's lease ends."""
        return max(self.next_attempt_ms, self.lease_until_ms)

    def to_json(self) -> dict[str, Any]:
        return {
            "org_id": self.org_id,
            "request_id": self.request_id,
            "digest": self.digest,
            "callback_url": self.callback_url,
            "body": self.body.decode(),
            "created_ms": self.created_ms,
            "attempts": self.attempts,
            "next_attempt_ms": self.next_attempt_ms,
            "lease_until_ms": self.lease_until_ms,
            "last_error": self.last_error,
            "nonce": uuid.uuid4().hex,  # SeaweedFS's ETag is the body's MD5: never repeat it
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], etag: str) -> PendingDelivery:
        """Raises ValueError, KeyError or TypeError for a record that is not one."""
        delivery = cls(
            org_id=str(data["org_id"]),
            request_id=str(data["request_id"]),
            digest=str(data["digest"]),
            callback_url=str(data["callback_url"]),
            body=str(data["body"]).encode(),
            created_ms=int(data["created_ms"]),
            attempts=int(data["attempts"]),
            next_attempt_ms=int(data["next_attempt_ms"]),
            lease_until_ms=int(data["lease_until_ms"]),
            last_error=data.get("last_error"),
            etag=etag,
        )
        delivery.name  # noqa: B018 - raises ValueError for ids that make no key
        return delivery


def new_delivery(
    org_id: str, request_id: str, callback_url: str, body: bytes, now: datetime
) -> PendingDelivery:
    return PendingDelivery(
        org_id=org_id,
        request_id=request_id,
        digest=body_digest(body),
        callback_url=callback_url,
        body=body,
        created_ms=to_ms(now),
        next_attempt_ms=to_ms(now),
    )


class PendingStore:
    """The deliveries' objects in one bucket."""

    def __init__(self, store: ObjectStore, *, reads_per_poll: int = 1000) -> None:
        self._store = store
        #: Objects not known yet (or changed) read per :meth:`due`: after a restart a
        #: backlog is learnt a slice a poll, and tries start after the first slice.
        self._reads_per_poll = reads_per_poll
        #: key -> (etag, due ms) of every pending object read before: an object is read
        #: again only when its ETag changes or it is about to be tried.
        self._known: dict[str, tuple[str, int]] = {}

    async def add(self, delivery: PendingDelivery) -> bool:
        """Make the delivery durable; False when it exists or was delivered already."""
        if await self._store.head(DELIVERED_PREFIX + delivery.name) is not None:
            return False
        try:
            await self._store.put(delivery.key, codec.dumps(delivery.to_json()), if_none_match=True)
        except PreconditionFailed:
            return False
        return True

    async def due(
        self, now: datetime, *, limit: int, skip: Collection[str] = ()
    ) -> list[PendingDelivery]:
        """Up to ``limit`` pending deliveries that may be tried now, earliest due first,
        none of ``skip`` (keys in flight here). Each object is read once per version to
        learn when it is due (at most ``reads_per_poll`` a call); after that only the ones
        returned are read again, so a backlog costs its listing and ``limit`` reads a poll,
        not a read of every object."""
        now_ms = to_ms(now)
        listed = await self._store.list_objects(PENDING_PREFIX)
        reads = 0
        for item in listed:
            known = self._known.get(item.key)
            if (known is None or known[0] != item.etag) and reads < self._reads_per_poll:
                reads += 1
                await self._read(item.key)
        listed_keys = {item.key for item in listed}
        for key in [key for key in self._known if key not in listed_keys]:
            del self._known[key]
        candidates = sorted(
            (due_ms, key)
            for key, (_, due_ms) in self._known.items()
            if due_ms <= now_ms and key not in skip
        )
        found: list[PendingDelivery] = []
        for _, key in candidates:
            if len(found) >= limit:
                break
            delivery = await self._read(key)
            if delivery is not None and delivery.due_ms() <= now_ms:
                found.append(delivery)
        return found

    async def _read(self, key: str) -> PendingDelivery | None:
        """The pending object at ``key`` (its due time cached); None when it is gone or
        malformed (logged, and not read again until it changes: it must not stop the
        others)."""
        stored = await self._store.get(key)
        if stored is None:
            self._known.pop(key, None)
            return None
        try:
            delivery = PendingDelivery.from_json(codec.loads(stored.body), stored.etag)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.error("pending webhook delivery %s is malformed (%r): left alone", key, exc)
            self._known[key] = (stored.etag, _NEVER_MS)
            return None
        self._known[key] = (stored.etag, delivery.due_ms())
        return delivery

    async def claim(
        self, delivery: PendingDelivery, now: datetime, lease_s: float
    ) -> PendingDelivery | None:
        """This replica's try of it (the attempt counted, leased); None if another
        replica changed it first."""
        claimed = replace(
            delivery,
            attempts=delivery.attempts + 1,
            lease_until_ms=to_ms(now + timedelta(seconds=lease_s)),
        )
        return await self._replace(claimed)

    async def reschedule(
        self, delivery: PendingDelivery, next_attempt: datetime, error: str
    ) -> PendingDelivery | None:
        return await self._replace(
            replace(
                delivery, next_attempt_ms=to_ms(next_attempt), lease_until_ms=0, last_error=error
            )
        )

    async def finished_before(self, delivery: PendingDelivery) -> bool:
        """Whether it was delivered already (a crash between the marker and the delete
        left the pending object): then the pending object is deleted now."""
        if await self._store.head(DELIVERED_PREFIX + delivery.name) is None:
            return False
        await self._store.delete(delivery.key)
        return True

    async def delivered(self, delivery: PendingDelivery, now: datetime) -> None:
        marker = {
            "request_id": delivery.request_id,
            "at_ms": to_ms(now),
            "attempts": delivery.attempts,
        }
        await self._store.put(DELIVERED_PREFIX + delivery.name, codec.dumps(marker))
        await self._store.delete(delivery.key)

    async def dead(self, delivery: PendingDelivery, error: str) -> None:
        record = replace(delivery, last_error=error).to_json()
        await self._store.put(DEAD_PREFIX + delivery.name, codec.dumps(record))
        await self._store.delete(delivery.key)

    async def _replace(self, delivery: PendingDelivery) -> PendingDelivery | None:
        try:
            etag = await self._store.put(
                delivery.key, codec.dumps(delivery.to_json()), if_match=delivery.etag
            )
        except PreconditionFailed:
            return None
        except StoreRefused as exc:
            if exc.status == 404:  # finished and deleted by another replica meanwhile
                return None
            raise
        self._known[delivery.key] = (etag, delivery.due_ms())
        return replace(delivery, etag=etag)
