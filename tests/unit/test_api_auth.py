"""API keys, their verification and the per-key rate limit, with no store or network."""

from __future__ import annotations

from dataclasses import replace

import pytest

from services.api.auth import AuthFailure, KeyVerifier, Principal, bearer_token
from services.api.auth_throttle import AuthThrottle
from services.api.keys import (
    USAGE_EXPORT_SCOPE,
    ApiKeyError,
    ApiKeyRecord,
    KeyStore,
    Pepper,
    new_key,
    parse_key,
    secret_matches,
)
from services.api.rate_limit import RateLimiter
from tests.unit.memory_store import MemoryStore

PEPPER = Pepper(b"unit-test pepper")


class FakeKeys:
    """The part of KeyStore the verifier uses, over a dict; counts reads and hashes."""

    def __init__(self, *records: ApiKeyRecord) -> None:
        self.records = {record.key_id: record for record in records}
        self.reads = 0
        self.hashes = 0

    async def get(self, key_id: str) -> ApiKeyRecord | None:
        self.reads += 1
        return self.records.get(key_id)

    def matches(self, record: ApiKeyRecord, secret: str) -> bool:
        self.hashes += 1
        return secret_matches(record, secret, PEPPER)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_new_key_is_stored_only_as_a_keyed_hash() -> None:
    key, record = new_key("ws-acme", scopes=(USAGE_EXPORT_SCOPE,), pepper=PEPPER)
    parsed = parse_key(key)
    assert parsed is not None
    assert parsed.key_id == record.key_id
    assert parsed.secret not in str(record.to_json())
    assert secret_matches(record, parsed.secret, PEPPER)
    assert not secret_matches(
        record, parsed.secret[:-1] + ("A" if parsed.secret[-1] != "A" else "B"), PEPPER
    )
    other_key, other = new_key("ws-acme", scopes=(USAGE_EXPORT_SCOPE,), pepper=PEPPER)
    assert (other.hash, other.key_id) != (record.hash, record.key_id)
    assert other_key != key


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "ue_",
        "ue_0123_abc",
        "sk_0123456789abcdef_" + "a" * 43,
        "ue_0123456789ABCDEF_" + "a" * 43,
    ],
)
def test_malformed_keys_do_not_parse(presented: str) -> None:
    assert parse_key(presented) is None


def test_a_key_for_an_invalid_workspace_is_refused() -> None:
    with pytest.raises(ApiKeyError):
        new_key("../etc", scopes=(USAGE_EXPORT_SCOPE,), pepper=PEPPER)


@pytest.mark.parametrize(
    ("header", "token"),
    [(None, None), ("", None), ("Bearer", None), ("Basic abc", None), ("bearer  abc ", "abc")],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


async def test_verifier_accepts_refuses_and_caches_for_the_ttl() -> None:
    key, record = new_key("ws-acme", scopes=(USAGE_EXPORT_SCOPE,), pepper=PEPPER)
    scoped_key, scoped = new_key("ws-acme", scopes=("chat",), pepper=PEPPER)
    keys = FakeKeys(record, scoped)
    clock = Clock()
    throttle = AuthThrottle(
        failures_per_key_per_min=10, failures_per_client_per_min=30, max_checks=8, clock=clock
    )
    verifier = KeyVerifier(keys, ttl_s=30, throttle=throttle, clock=clock)
    accepted = await verifier.verify(f"Bearer {key}")
    assert accepted == Principal(key_id=record.key_id, org_id="ws-acme")
    assert await verifier.verify(f"Bearer {scoped_key}") is AuthFailure.SCOPE
    assert await verifier.verify(None) is AuthFailure.MISSING
    assert await verifier.verify("Bearer " + key[:-2] + "zz") is AuthFailure.INVALID
    reads = keys.reads
    keys.records[record.key_id] = replace(record, revoked_at="2026-01-01T00:00:00+00:00")
    assert await verifier.verify(f"Bearer {key}") == accepted  # cached
    assert keys.reads == reads
    clock.now += 31
    assert await verifier.verify(f"Bearer {key}") is AuthFailure.REVOKED


def test_rate_limiter_refuses_past_the_burst_and_refills() -> None:
    clock = Clock()
    limiter = RateLimiter(3, clock=clock)
    assert [limiter.acquire("k") for _ in range(3)] == [None, None, None]
    wait = limiter.acquire("k")
    assert wait == 20  # one token every 60/3 s
    assert limiter.acquire("other") is None  # per key
    clock.now += 20
    assert limiter.acquire("k") is None
    assert limiter.acquire("k") is not None


async def test_a_corrupt_key_record_is_no_key() -> None:
    store = MemoryStore()
    keys = KeyStore(store, pepper=PEPPER)
    _, record = await keys.create("ws-a", name="good")
    broken, notjson = "00000000000000aa", "00000000000000bb"
    await store.put(f"api-keys/{broken}.json", b'{"key_id": "%s", "hash": "zz"}' % broken.encode())
    await store.put(f"api-keys/{notjson}.json", b"{")
    await store.put("api-keys/not-a-key-id.json", b"{}")
    assert await keys.get(broken) is None
    assert await keys.get(notjson) is None
    assert await keys.get("not-a-key-id") is None
    assert [found.key_id for found in await keys.list_for("ws-a")] == [record.key_id]
