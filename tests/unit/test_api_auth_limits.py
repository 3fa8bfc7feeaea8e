"""Issue 13, finding 1: wrong secrets are limited before they cost a store read or a
hash, checks at once are capped, and keys are stored as HMACs keyed by a pepper."""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import replace

import pytest

from services.api.auth import AuthFailure, KeyVerifier, Principal, Throttled
from services.api.auth_throttle import AuthThrottle
from services.api.keys import (
    RETIRED_SCHEME,
    USAGE_EXPORT_SCOPE,
    ApiKeyRecord,
    KeyStore,
    Pepper,
    new_key,
    parse_key,
    pepper_of,
    secret_matches,
)
from services.api.rate_limit import FailureLimiter
from shared import codec
from shared.settings import Settings
from tests.unit.memory_store import MemoryStore
from tests.unit.test_api_auth import PEPPER, Clock, FakeKeys


def _throttle(
    clock: Clock, *, per_key: int = 10, per_client: int = 30, checks: int = 8
) -> AuthThrottle:
    return AuthThrottle(
        failures_per_key_per_min=per_key,
        failures_per_client_per_min=per_client,
        max_checks=checks,
        clock=clock,
    )


def _wrong(key: str) -> str:
    """The key with another random secret."""
    parsed = parse_key(key)
    assert parsed is not None
    return f"ue_{parsed.key_id}_{secrets.token_urlsafe(32)}"


def test_failure_limiter_counts_only_failures_and_refills() -> None:
    clock = Clock()
    limiter = FailureLimiter(3, clock=clock)
    for _ in range(5):  # attempts that succeed give their token back
        assert limiter.take("k") is None
        limiter.refund("k")
    assert [limiter.take("k") for _ in range(3)] == [None, None, None]  # three failures
    assert limiter.take("k") == 20  # one attempt every 60/3 s
    assert limiter.take("other") is None
    clock.now += 20
    assert limiter.take("k") is None
    assert limiter.take("k") == 20


async def test_many_wrong_secrets_for_one_key_id_get_429_before_any_hash() -> None:
    """The attack of the finding: a known key id, 300 wrong secrets. Before the fix each
    one cost a store read and a scrypt; now the 11th and later cost neither."""
    key, record = new_key("ws-acme", scopes=(USAGE_EXPORT_SCOPE,), pepper=PEPPER)
    keys = FakeKeys(record)
    clock = Clock()
    verifier = KeyVerifier(keys, ttl_s=30, throttle=_throttle(clock), clock=clock)
    outcomes = [
        await verifier.verify(f"Bearer {_wrong(key)}", f"10.0.0.{n % 200}") for n in range(300)
    ]
    assert outcomes[:10] == [AuthFailure.INVALID] * 10
    refused = outcomes[10:]
    assert all(isinstance(outcome, Throttled) for outcome in refused)
    assert {outcome.retry_after_s for outcome in refused if isinstance(outcome, Throttled)} == {6}
    assert keys.hashes == 10
    assert keys.reads == 10
    clock.now += 6  # one failed attempt is allowed again every 6 s
    assert await verifier.verify(f"Bearer {_wrong(key)}", "10.0.0.1") is AuthFailure.INVALID
    assert isinstance(await verifier.verify(f"Bearer {_wrong(key)}", "10.0.0.1"), Throttled)
    assert keys.hashes == 11


async def test_the_holder_of_the_real_secret_is_not_locked_out_by_an_attacker() -> None:
    key, record = new_key("ws-acme", scopes=(USAGE_EXPORT_SCOPE,), pepper=PEPPER)
    keys = FakeKeys(record)
    clock = Clock()
    verifier = KeyVerifier(keys, ttl_s=30, throttle=_throttle(clock), clock=clock)
    accepted = Principal(key_id=record.key_id, org_id="ws-acme")
    assert await verifier.verify(f"Bearer {key}", "192.0.2.1") == accepted
    for _ in range(20):
        await verifier.verify(f"Bearer {_wrong(key)}", "198.51.100.7")
    assert isinstance(await verifier.verify(f"Bearer {_wrong(key)}", "192.0.2.1"), Throttled)
    clock.now += 31  # the cached outcome expired: checked again, despite the attack
    assert await verifier.verify(f"Bearer {key}", "192.0.2.1") == accepted
    keys.records[record.key_id] = replace(record, revoked_at="2026-01-01T00:00:00+00:00")
    clock.now += 31
    assert await verifier.verify(f"Bearer {key}", "192.0.2.1") is AuthFailure.REVOKED


async def test_failures_from_one_address_are_limited_across_key_ids() -> None:
    clock = Clock()
    keys = FakeKeys()
    verifier = KeyVerifier(keys, ttl_s=30, throttle=_throttle(clock, per_client=5), clock=clock)

    def unknown() -> str:
        return f"Bearer ue_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}"

    outcomes = [await verifier.verify(unknown(), "203.0.113.9") for _ in range(8)]
    assert outcomes[:5] == [AuthFailure.INVALID] * 5
    assert all(isinstance(outcome, Throttled) for outcome in outcomes[5:])
    assert keys.reads == 5
    assert await verifier.verify(unknown(), "203.0.113.10") is AuthFailure.INVALID
    throttled = outcomes[5]
    assert isinstance(throttled, Throttled)
    assert "address" in throttled.message


async def test_key_checks_at_once_are_capped() -> None:
    clock = Clock()
    gate = asyncio.Event()
    running = [0, 0]  # now, most

    class SlowKeys(FakeKeys):
        async def get(self, key_id: str) -> ApiKeyRecord | None:
            running[0] += 1
            running[1] = max(running[1], running[0])
            await gate.wait()
            running[0] -= 1
            return None

    verifier = KeyVerifier(SlowKeys(), ttl_s=30, throttle=_throttle(clock, checks=3), clock=clock)
    checks = [
        asyncio.create_task(
            verifier.verify(f"Bearer ue_{n:016x}_{secrets.token_urlsafe(32)}", f"10.1.0.{n}")
        )
        for n in range(20)
    ]
    for _ in range(10):
        await asyncio.sleep(0)
    assert running == [3, 3]
    gate.set()
    assert set(await asyncio.gather(*checks)) == {AuthFailure.INVALID}
    assert running[1] == 3


async def test_the_hash_covers_workspace_and_scopes_so_a_written_record_cannot_retarget_a_key() -> (
    None
):
    """Write access to the store alone (finding 2's anonymous PUT) cannot move a key to
    another workspace or widen its scopes: the HMAC, keyed by the pepper, covers them."""
    key, record = new_key("ws-attacker", scopes=("chat",), pepper=PEPPER)
    parsed = parse_key(key)
    assert parsed is not None
    assert secret_matches(record, parsed.secret, PEPPER)
    assert not secret_matches(replace(record, org_id="ws-victim"), parsed.secret, PEPPER)
    assert not secret_matches(replace(record, scopes=(USAGE_EXPORT_SCOPE,)), parsed.secret, PEPPER)
    assert not secret_matches(record, parsed.secret, Pepper(b"another pepper"))


async def test_a_retired_scrypt_record_authenticates_nobody_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryStore()
    keys = KeyStore(store, pepper=PEPPER)
    key_id = "0123456789abcdef"
    old = {  # the record shape written before issue 13
        "key_id": key_id,
        "org_id": "ws-acme",
        "scopes": [USAGE_EXPORT_SCOPE],
        "name": "",
        "created_at": "2026-01-01T00:00:00+00:00",
        "revoked_at": None,
        "salt": "00" * 16,
        "hash": "11" * 32,
    }
    await store.put(f"api-keys/{key_id}.json", codec.dumps(old))
    record = await keys.get(key_id)
    assert record is not None
    assert record.scheme == RETIRED_SCHEME
    clock = Clock()
    verifier = KeyVerifier(keys, ttl_s=30, throttle=_throttle(clock), clock=clock)
    with caplog.at_level(logging.WARNING, logger="services.api.keys"):
        outcome = await verifier.verify(f"Bearer ue_{key_id}_{'a' * 43}")
    assert outcome is AuthFailure.INVALID
    assert "retired 'scrypt' scheme" in caplog.text
    assert "create a new key" in caplog.text
    revoked = await keys.revoke("ws-acme", key_id)  # it can still be revoked
    assert revoked.revoked_at is not None
    assert revoked.salt == old["salt"]


async def test_a_changed_pepper_is_reported_as_such(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore()
    key, _ = await KeyStore(store, pepper=PEPPER).create("ws-acme")
    other = KeyStore(store, pepper=Pepper(b"rotated"))
    clock = Clock()
    verifier = KeyVerifier(other, ttl_s=30, throttle=_throttle(clock), clock=clock)
    with caplog.at_level(logging.WARNING, logger="services.api.keys"):
        assert await verifier.verify(f"Bearer {key}") is AuthFailure.INVALID
    assert "another pepper" in caplog.text
    assert "USAGE_API_KEY_PEPPER" in caplog.text


def _with_store_secret(secret: str, *, pepper: str) -> Settings:
    return Settings(s3_access_key="k", s3_secret_key=secret, api_key_pepper=pepper)


def test_the_pepper_is_the_setting_or_derived_from_the_store_secret() -> None:
    derived = pepper_of(_with_store_secret("store-secret-1", pepper=""))
    assert derived == pepper_of(_with_store_secret("store-secret-1", pepper=""))
    assert derived != pepper_of(_with_store_secret("store-secret-2", pepper=""))
    assert b"store-secret-1" not in derived.secret
    explicit = pepper_of(_with_store_secret("store-secret-1", pepper="pepper"))
    assert explicit.secret == b"pepper"
    assert len(derived.pepper_id) == 16
    assert "pepper" not in repr(explicit)


async def test_one_key_presented_by_many_requests_at_once_is_checked_once() -> None:
    """Found by the route test: twelve requests with a right key and a cold cache took
    twelve tokens of the key id's failure bucket before any check had ended."""
    key, record = new_key("ws-acme", scopes=(USAGE_EXPORT_SCOPE,), pepper=PEPPER)
    keys = FakeKeys(record)
    clock = Clock()
    verifier = KeyVerifier(keys, ttl_s=30, throttle=_throttle(clock, per_key=3), clock=clock)
    outcomes = await asyncio.gather(
        *(verifier.verify(f"Bearer {key}", "192.0.2.1") for _ in range(12))
    )
    assert set(outcomes) == {Principal(key_id=record.key_id, org_id="ws-acme")}
    assert (keys.reads, keys.hashes) == (1, 1)


async def test_a_cancelled_shared_check_lets_the_others_check_for_themselves() -> None:
    key, record = new_key("ws-acme", scopes=(USAGE_EXPORT_SCOPE,), pepper=PEPPER)
    gate = asyncio.Event()

    class GatedKeys(FakeKeys):
        async def get(self, key_id: str) -> ApiKeyRecord | None:
            await gate.wait()
            return await super().get(key_id)

    clock = Clock()
    verifier = KeyVerifier(GatedKeys(record), ttl_s=30, throttle=_throttle(clock), clock=clock)
    first = asyncio.create_task(verifier.verify(f"Bearer {key}"))
    await asyncio.sleep(0)
    second = asyncio.create_task(verifier.verify(f"Bearer {key}"))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    gate.set()
    assert await second == Principal(key_id=record.key_id, org_id="ws-acme")
    assert first.cancelled()
