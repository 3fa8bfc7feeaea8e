"""The object store against the real store: conditional writes fence writers, and a
refused request is the project's :class:`StoreRefused` from every call, at once (issue 14,
item 2: before, ``head``, listing and multipart calls let botocore's ``ClientError`` out)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import pytest
from pydantic import SecretStr

from shared.adapters.s3 import S3ObjectStore
from shared.errors import PreconditionFailed, StoreRefused, UploadNotFound
from shared.settings import Settings

SIGNATURE = "SignatureDoesNotMatch"  # S3's code for a request signed with another secret


async def test_get_put_delete_and_conditional_writes(settings: Settings) -> None:
    key = "v1/orgs/ws:store/days/2026-01-01/head.json"  # ':' is escaped on the wire
    async with S3ObjectStore(settings, settings.aggregates_bucket) as store:
        await store.delete(key)
        assert await store.get(key) is None
        assert await store.head(key) is None
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
        head = await store.head(key)
        assert head is not None
        assert (head.size, head.etag, head.content_type) == (7, second, "application/json")
        [listed] = await store.list_objects("v1/orgs/ws:store/")
        assert (listed.key, listed.size, listed.etag) == (key, 7, second)
        assert await store.list_prefixes("v1/orgs/ws:store/") == ["v1/orgs/ws:store/days/"]
        await store.delete(key)
        assert await store.get(key) is None
        await store.delete(key)  # deleting what is gone is fine


async def test_a_listing_after_a_key_returns_only_the_keys_after_it(settings: Settings) -> None:
    """``start_after`` (S3's ``StartAfter``) is honoured by the store: what the compactor
    relies on to see a Delta log's new commits in one request."""
    log = "v3/workspaces/ws-start-after/facts/_delta_log/"
    commits = [f"{log}{version:020d}.json" for version in range(5)]
    keys = [*commits, f"{log}00000000000000000003.checkpoint.parquet", f"{log}_last_checkpoint"]
    async with S3ObjectStore(settings, settings.aggregates_bucket) as store:
        for key in keys:
            await store.put(key, b"{}")
        everything = [item.key for item in await store.list_objects(log)]
        after = [item.key for item in await store.list_objects(log, start_after=commits[2])]
        beyond = await store.list_objects(log, start_after=f"{log}~")
        absent = [item.key for item in await store.list_objects(log, start_after=f"{log}0")]
        for key in keys:
            await store.delete(key)
    assert everything == sorted(keys)
    assert after == [
        f"{log}00000000000000000003.checkpoint.parquet",
        commits[3],
        commits[4],
        f"{log}_last_checkpoint",
    ]
    assert beyond == []
    assert absent == sorted(keys)  # a key that does not exist is a bound as well


async def test_completing_a_gone_upload_is_upload_not_found(settings: Settings) -> None:
    async with S3ObjectStore(settings, settings.exports_bucket) as store:
        upload_id = await store.create_multipart_upload(
            "gone.csv", content_type="text/csv", metadata={}
        )
        etag = await store.upload_part("gone.csv", upload_id, 1, b"a,b\r\n")
        await store.abort_multipart_upload("gone.csv", upload_id)
        await store.abort_multipart_upload("gone.csv", upload_id)  # unknown: not an error
        with pytest.raises(UploadNotFound):
            await store.complete_multipart_upload("gone.csv", upload_id, [(1, etag)])


async def test_a_wrong_secret_is_store_refused_from_every_call_and_not_retried(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A 403 is final: raised at once as :class:`StoreRefused` with the status and the
    store's code (not retried, so not turned into ``StoreUnavailable`` after the attempts
    the settings allow), whichever call made it."""
    wrong = settings.model_copy(
        update={"s3_secret_key": SecretStr("not-the-secret"), "s3_max_attempts": 4}
    )
    caplog.set_level(logging.INFO, logger="shared.adapters.s3")
    key = "v1/orgs/ws-x/forged.json"
    async with S3ObjectStore(wrong, wrong.aggregates_bucket) as store:
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "GET": lambda: store.get(key),
            "PUT": lambda: store.put(key, b"{}"),
            "PUT with metadata": lambda: store.put_with_metadata(
                key, b"{}", content_type="text/csv", metadata={}
            ),
            "conditional PUT": lambda: store.put(key, b"{}", if_none_match=True),
            "DELETE": lambda: store.delete(key),
            "LIST": lambda: store.list_objects("v1/"),
            "LIST prefixes": lambda: store.list_prefixes("v1/"),
            "CREATE MULTIPART": lambda: store.create_multipart_upload(
                key, content_type="text/csv", metadata={}
            ),
            "UPLOAD PART": lambda: store.upload_part(key, "no-upload", 1, b"x"),
            "COMPLETE MULTIPART": lambda: store.complete_multipart_upload(
                key, "no-upload", [(1, '"x"')]
            ),
            "ABORT MULTIPART": lambda: store.abort_multipart_upload(key, "no-upload"),
        }
        for name, call in calls.items():
            with pytest.raises(StoreRefused) as refused:
                await call()
            assert (name, refused.value.status, refused.value.code) == (name, 403, SIGNATURE)
            assert not isinstance(refused.value, UploadNotFound)
        heads: list[Callable[[], Awaitable[object]]] = [
            lambda: store.head(key),
            store.check_bucket,
        ]
        for head in heads:
            with pytest.raises(StoreRefused) as refused:
                await head()
            assert refused.value.status == 403  # a HEAD answer has no body: no code to read
    retries = [record.getMessage() for record in caplog.records if "attempt" in record.getMessage()]
    assert retries == []
