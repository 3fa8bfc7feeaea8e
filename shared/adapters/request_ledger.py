"""The request ledger: per-request records that make a request id answer the same way
every time it is seen, for the exporter and the HTTP API alike.

``requests/{org_id}/{request_id}.json`` in the exports bucket is created, with
``If-None-Match: *``, the first time a request is seen. It pins the instant the request
was first seen: ``to`` is clamped to "now" and ``from`` is judged against it, so a replay
months later must resolve the window exactly as the first delivery did. Once the request
has a final outcome the record is updated (``If-Match`` on the ETag read) with it; a
redelivery or replay re-publishes that outcome (with a fresh signed URL) and never writes
a second file.

Final outcomes are 200, 400, 404 and 409. A 500/503 (store unavailable, deadline passed)
is *not* final: the record keeps only the pinned instant, so a later delivery of the same
request retries with the same window.

``file-owners/{filePath}.owner`` is created with ``If-None-Match: *`` before a file is
written: the contract's file name keeps only 8 characters of the request id, so two
different requests for the same workspace, type and period could otherwise overwrite each
other's file. The second one is answered 409.

A request with a ``callback_url`` that passed vetting has it written into its record
(:meth:`RequestLedger.note_callback`) before it is answered: the delivery service reads it
there for each completion that says it has one (docs/decisions.md, "Webhooks").

Record bodies carry a random nonce: SeaweedFS's ETag is the body's MD5, and an ETag
must never repeat for a different write.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared import codec
from shared.adapters.object_store import ObjectStore
from shared.domain.export.outcomes import Outcome
from shared.domain.export.paths import file_owner_key, request_record_key
from shared.domain.window import to_ms
from shared.errors import PreconditionFailed

RECORD_SCHEMA = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class RequestRecord:
    org_id: str
    request_id: str
    first_seen_ms: int
    etag: str
    outcome: Outcome | None = None
    callback_url: str | None = None

    @property
    def first_seen(self) -> datetime:
        return _EPOCH + timedelta(milliseconds=self.first_seen_ms)


def _parse(body: bytes, etag: str) -> RequestRecord:
    data = codec.loads(body)
    outcome = data.get("outcome")
    return RequestRecord(
        org_id=data["org_id"],
        request_id=data["request_id"],
        first_seen_ms=int(data["first_seen_ms"]),
        etag=etag,
        outcome=Outcome.from_json(outcome) if outcome else None,
        callback_url=data.get("callback_url"),
    )


def _body(record: RequestRecord, outcome: Outcome | None) -> bytes:
    return codec.dumps(
        {
            "schema": RECORD_SCHEMA,
            "org_id": record.org_id,
            "request_id": record.request_id,
            "first_seen_ms": record.first_seen_ms,
            "outcome": outcome.to_json() if outcome is not None else None,
            "callback_url": record.callback_url,
            "nonce": uuid.uuid4().hex,
        }
    )


class RequestLedger:
    """Request records and file ownership in the exports bucket."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store

    async def peek(self, org_id: str, request_id: str) -> RequestRecord | None:
        """The request's record as it is, without creating it (the HTTP API's status route)."""
        stored = await self._store.get(request_record_key(org_id, request_id))
        return None if stored is None else _parse(stored.body, stored.etag)

    async def open(self, org_id: str, request_id: str, now: datetime) -> RequestRecord:
        """The request's record, created (pinning ``now``) if this is its first sighting."""
        key = request_record_key(org_id, request_id)
        for _ in range(5):
            stored = await self._store.get(key)
            if stored is not None:
                return _parse(stored.body, stored.etag)
            fresh = RequestRecord(
                org_id=org_id, request_id=request_id, first_seen_ms=to_ms(now), etag=""
            )
            try:
                fresh.etag = await self._store.put(key, _body(fresh, None), if_none_match=True)
            except PreconditionFailed:
                continue  # created concurrently: read theirs
            return fresh
        raise PreconditionFailed(f"request record {key} kept changing")

    async def note_callback(self, record: RequestRecord, callback_url: str) -> None:
        """Record the request's vetted callback URL (kept by every later write)."""
        if record.callback_url == callback_url:
            return
        key = request_record_key(record.org_id, record.request_id)
        for _ in range(5):
            record.callback_url = callback_url
            try:
                record.etag = await self._store.put(
                    key, _body(record, record.outcome), if_match=record.etag
                )
            except PreconditionFailed:
                stored = await self._store.get(key)
                if stored is None:
                    raise
                current = _parse(stored.body, stored.etag)
                record.etag, record.outcome = current.etag, current.outcome
                continue
            return
        raise PreconditionFailed(f"request record {key} kept changing")

    async def settle(
        self, record: RequestRecord, outcome: Outcome, *, replace: bool = False
    ) -> Outcome:
        """Record a final outcome; returns the outcome that counts (a concurrent
        delivery may have settled first: then that one, unless ``replace``)."""
        if not outcome.final:
            return outcome
        key = request_record_key(record.org_id, record.request_id)
        for _ in range(5):
            try:
                record.etag = await self._store.put(
                    key, _body(record, outcome), if_match=record.etag
                )
            except PreconditionFailed:
                stored = await self._store.get(key)
                if stored is None:
                    raise
                current = _parse(stored.body, stored.etag)
                if current.outcome is not None and not replace:
                    record.outcome, record.etag = current.outcome, current.etag
                    return current.outcome
                record.etag = current.etag
                continue
            record.outcome = outcome
            return outcome
        raise PreconditionFailed(f"request record {key} kept changing")

    async def claim_file(self, file_path: str, request_id: str) -> str | None:
        """Claim a file path for a request; the other owner's request id if taken."""
        key = file_owner_key(file_path)
        body = codec.dumps({"request_id": request_id})
        try:
            await self._store.put(key, body, if_none_match=True)
        except PreconditionFailed:
            stored = await self._store.get(key)
            owner = str(codec.loads(stored.body)["request_id"]) if stored is not None else None
            return None if owner in (None, request_id) else owner
        return None
