"""The lean GET/PUT/DELETE client against the real store: what ingest relies on, with
both clients (lean, and botocore when it is switched off)."""

from __future__ import annotations

import logging

import pytest
from botocore.exceptions import ClientError
from pydantic import SecretStr

from shared.adapters.s3 import ObjectStore
from shared.adapters.s3_lean import RequestRefused
from shared.errors import PreconditionFailed
from shared.settings import Settings

SIGNATURE = "SignatureDoesNotMatch"  # S3's code for a request signed with another secret


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "botocore"])
async def test_get_put_delete_and_conditional_writes(settings: Settings, lean: bool) -> None:
    chosen = settings.model_copy(update={"s3_lean_client": lean})
    key = f"v1/orgs/ws:lean-{lean}/days/2026-01-01/head.json"  # ':' is escaped on the wire
    async with ObjectStore(chosen, chosen.aggregates_bucket) as store:
        await store.delete(key)
        assert await store.get(key) is None
        first = await store.put(key, b'{"n":1}', if_none_match=True)
        with pytest.raises(PreconditionFailed):
            await store.put(key, b'{"n":2}', if_none_match=True)
        stored = await store.get(key)
        assert stored is not None
        assert (stored.body, stored.etag) == (b'{"n":1}', first)
        second = await store.put(key, b'{"n":2}', if_match=first)
        with pytest.raises(PreconditionFailed):
            await store.put(key, b'{"n":3}', if_match=first)
        assert second != first
        assert await store.get(key) == type(stored)(body=b'{"n":2}', etag=second)
        await store.delete(key)
        assert await store.get(key) is None
        await store.delete(key)  # deleting what is gone is fine


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "botocore"])
async def test_a_wrong_secret_is_refused_not_retried(
    settings: Settings, lean: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """A 403 is final: the first answer is raised as is (not retried, so not turned into
    ``StoreUnavailable`` after the attempts the settings allow)."""
    wrong = settings.model_copy(
        update={
            "s3_secret_key": SecretStr("not-the-secret"),
            "s3_lean_client": lean,
            "s3_max_attempts": 4,
        }
    )
    caplog.set_level(logging.INFO, logger="shared.adapters.s3")
    read, write = "v1/orgs/ws-x/days/2026-01-01/head.json", "v1/orgs/ws-x/forged.json"
    async with ObjectStore(wrong, wrong.aggregates_bucket) as store:
        if lean:
            with pytest.raises(RequestRefused, match=rf"(?s)^GET {read}: HTTP 403 .*{SIGNATURE}"):
                await store.get(read)
            with pytest.raises(RequestRefused, match=rf"(?s)^PUT {write}: HTTP 403 .*{SIGNATURE}"):
                await store.put(write, b"{}")
        else:
            for attempt in (store.get(read), store.put(write, b"{}")):
                with pytest.raises(ClientError) as refused:
                    await attempt
                error = refused.value.response
                assert error["ResponseMetadata"]["HTTPStatusCode"] == 403
                assert error["Error"]["Code"] == SIGNATURE
    retries = [record.getMessage() for record in caplog.records if "attempt" in record.getMessage()]
    assert retries == []
