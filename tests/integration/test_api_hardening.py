"""Issue 13 on the real broker and store: wrong secrets are refused 429 before a hash,
an Idempotency-Key reused for another request is 409, and one workspace cannot hold
more than its share of exports in flight.

No exporter runs: every accepted export waits out ``api_timeout_s`` and is answered 202,
which is all these checks need (they happen before or instead of the wait).
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from services.api import keys as keys_module
from services.api.idempotency_keys import idempotency_key_object
from services.api.keys import ApiKeyRecord, Pepper
from shared.adapters.s3 import S3ObjectStore
from shared.settings import Settings
from tests.integration.api_tools import call, create_key, running_api, window
from tests.integration.conftest import FreshSettingsFactory

FROM, TO = "2026-01-01", "2026-01-31"


def _window() -> dict[str, object]:
    return window(FROM, TO)


async def test_wrong_secrets_for_a_key_id_get_429_before_any_hash(
    make_fresh_settings: FreshSettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = await make_fresh_settings(
        api_timeout_s=0.2, api_key_cache_ttl_s=0, api_auth_failures_per_key_per_min=3
    )
    hashes = [0]
    real_matches = keys_module.secret_matches

    def counting(record: ApiKeyRecord, secret: str, pepper: Pepper) -> bool:
        hashes[0] += 1
        return real_matches(record, secret, pepper)

    monkeypatch.setattr(keys_module, "secret_matches", counting)
    key = await create_key(settings, "ws-target")
    wrong = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    url_of = "{}/export/users"
    async with running_api(settings) as serving:
        url = url_of.format(serving.api_url)
        held = await call(url, key=key, body=_window())  # the holder, before the attack
        assert held.status == 202
        answers = [await call(url, key=wrong, body=_window()) for _ in range(12)]
        hashed_during_attack = hashes[0] - 1
        after = await call(url, key=key, body=_window())  # no cache (TTL 0): checked again
    assert [answer.status for answer in answers] == [401] * 3 + [429] * 9
    assert hashed_during_attack == 3
    refused = answers[-1]
    assert refused.body["error"] == "Too Many Requests"
    assert set(refused.body) == {"error", "message"}
    assert int(refused.headers["Retry-After"]) >= 1
    assert after.status == 202  # the real key's holder is not locked out


async def test_an_idempotency_key_reused_for_another_request_is_409(
    make_fresh_settings: FreshSettingsFactory,
) -> None:
    settings = await make_fresh_settings(api_timeout_s=0.2)
    key = await create_key(settings, "ws-idem")
    headers = {"Idempotency-Key": f"client-{uuid.uuid4().hex}"}
    async with running_api(settings) as serving:
        first = await call(
            f"{serving.api_url}/export/users", key=key, body=_window(), headers=headers
        )
        other_type = await call(
            f"{serving.api_url}/export/models", key=key, body=_window(), headers=headers
        )
        other_window = await call(
            f"{serving.api_url}/export/users",
            key=key,
            body=window(FROM, "2026-01-30"),
            headers=headers,
        )
        same_as_json = await call(
            f"{serving.api_url}/api/public/export/users/json",
            key=key,
            body=_window(),
            headers=headers,
        )
    assert first.status == 202
    assert first.body["requestId"] == headers["Idempotency-Key"]
    for answer in (other_type, other_window):
        assert answer.status == 409, answer.body
        assert answer.body["error"] == "Conflict"
        assert "already used for a different request" in answer.body["message"]
        assert "a users export from 2026-01-01 (UTC) to 2026-01-31 (UTC)" in answer.body["message"]
    assert same_as_json.status == 202  # the same request in another shape goes ahead


async def _until_stored(settings: Settings, key: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with S3ObjectStore(settings, settings.exports_bucket) as store:
        while await store.get(key) is None:
            assert time.monotonic() < deadline, f"{key} never appeared"
            await asyncio.sleep(0.05)


async def test_a_workspace_over_its_exports_in_flight_gets_429_and_others_go_on(
    make_fresh_settings: FreshSettingsFactory,
) -> None:
    settings = await make_fresh_settings(api_timeout_s=10.0, api_max_exports_per_workspace=1)
    busy = await create_key(settings, "ws-busy")
    quiet = await create_key(settings, "ws-quiet")
    request_id = f"held-{uuid.uuid4().hex}"
    async with running_api(settings) as serving:
        url = f"{serving.api_url}/export/users"
        holding = asyncio.create_task(
            call(url, key=busy, body=_window(), headers={"Idempotency-Key": request_id})
        )
        # Its Idempotency-Key record is written while it holds the workspace's one slot.
        await _until_stored(settings, idempotency_key_object("ws-busy", request_id))
        other_workspace = asyncio.create_task(call(url, key=quiet, body=_window()))
        refused = await call(url, key=busy, body=_window())
        held, other = await holding, await other_workspace
    assert refused.status == 429, refused.body
    assert refused.body["error"] == "Too Many Requests"
    assert "1 export requests in progress" in refused.body["message"]
    assert refused.headers["Retry-After"] == "5"
    assert (held.status, other.status) == (202, 202)
