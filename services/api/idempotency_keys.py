"""What an ``Idempotency-Key`` was first used for, so that reusing it for a different
request is answered 409 instead of with the first request's export.

``idempotency-keys/{org_id}/{request_id}.json`` in the exports bucket is created with
``If-None-Match: *`` the first time a key is used (after the body is validated, before
anything is published) and holds the request's fingerprint: a SHA-256 of its data type,
``from``, ``to``, ``group_by``, ``format``, ``bucket``, ``callback_url`` and
``destination`` as sent. A
repeat with the same fingerprint goes ahead (and gets the same export); any other is
refused. The route variant (file, ``/csv``, ``/json``) is not part of it: those are one
export answered in different shapes. Two first uses racing are decided by the conditional write.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from shared import codec
from shared.adapters.object_store import ObjectStore
from shared.contracts.ids import is_valid_id
from shared.errors import PreconditionFailed

IDEMPOTENCY_PREFIX = "idempotency-keys/"
_FINGERPRINTED = ("data_type", "from", "to", "group_by")


def request_fingerprint(message: dict[str, Any]) -> str:
    """SHA-256 of what a request asks for (its contract §3 message's request fields; the
    format only when it is not CSV, the bucket and the callback URL only when there is one,
    so that leaving them out or naming the default is the same request, and fingerprints
    made before formats and buckets still match)."""
    asked = {name: message.get(name) for name in _FINGERPRINTED}
    export_format = message.get("format") or "csv"
    if export_format != "csv":
        asked["format"] = export_format
    if message.get("bucket") is not None:
        asked["bucket"] = message["bucket"]
    if message.get("callback_url") is not None:
        asked["callback_url"] = message["callback_url"]
    if message.get("destination") is not None:
        asked["destination"] = message["destination"]
    return hashlib.sha256(codec.dumps_sorted(asked)).hexdigest()


def describe(message: dict[str, Any]) -> str:
    """``users export from 2024-01-01 (UTC) to …`` for an error message."""
    start, end = message.get("from") or {}, message.get("to") or {}
    text = (
        f"a {message.get('data_type')} export from {start.get('date')} ({start.get('timezone')})"
        f" to {end.get('date')} ({end.get('timezone')})"
    )
    group_by = message.get("group_by")
    text = f"{text} grouped by {group_by}" if group_by else text
    bucket = message.get("bucket")
    text = f"{text} by {bucket}" if bucket else text
    export_format = message.get("format")
    return f"{text} as {export_format}" if export_format else text


def idempotency_key_object(org_id: str, request_id: str) -> str:
    for name, value in (("org id", org_id), ("request id", request_id)):
        if not is_valid_id(value):
            raise ValueError(f"refusing to build an object key from {name} {value!r}")
    return f"{IDEMPOTENCY_PREFIX}{org_id}/{request_id}.json"


class IdempotencyKeys:
    """First uses of idempotency keys, in the exports bucket."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store

    async def claim(self, org_id: str, request_id: str, message: dict[str, Any]) -> str | None:
        """None when ``request_id`` is new or was used for this same request; else a
        description of the different request it was first used for."""
        key = idempotency_key_object(org_id, request_id)
        fingerprint = request_fingerprint(message)
        first = {
            "fingerprint": fingerprint,
            "request": {name: message.get(name) for name in _FINGERPRINTED},
            "nonce": uuid.uuid4().hex,  # SeaweedFS's ETag is the body's MD5
        }
        try:
            await self._store.put(key, codec.dumps(first), if_none_match=True)
            return None
        except PreconditionFailed:
            stored = await self._store.get(key)
        if stored is None:  # deleted meanwhile: nothing left to conflict with
            return None
        earlier = codec.loads(stored.body)
        if earlier.get("fingerprint") == fingerprint:
            return None
        return describe(dict(earlier.get("request") or {}))
