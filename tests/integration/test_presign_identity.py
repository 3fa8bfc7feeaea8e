"""Download URLs are signed by a read-only identity, not the store's admin (issue 13, 7d).

On the embedded store the exporter's presigned URLs carry the presign access key; that
identity can read the exports bucket and nothing else: no write, delete or listing, and
no read of the aggregates bucket (where the API keys live).
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.parse
import urllib.request

import pytest
from botocore.exceptions import ClientError

from shared.adapters.s3 import S3ObjectStore
from shared.embedded import EmbeddedStack
from shared.embedded.s3client import open_s3_client
from shared.settings import Settings

from .conftest import InfraStack


@pytest.fixture
def presign_settings(stack: InfraStack, fresh_settings: Settings) -> Settings:
    if not isinstance(stack, EmbeddedStack):
        pytest.skip("the read-only identity is the embedded store's")
    return fresh_settings


def _as_presigner(settings: Settings) -> Settings:
    """``settings`` whose main keys are the presign identity's."""
    assert settings.s3_presign_access_key is not None
    return settings.model_copy(
        update={
            "s3_access_key": settings.s3_presign_access_key,
            "s3_secret_key": settings.s3_presign_secret_key,
        }
    )


def _fetch(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method)  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def _credential(url: str) -> str:
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    return query["X-Amz-Credential"][0].split("/", 1)[0]


async def test_download_url_is_signed_by_the_presign_identity_and_works(
    presign_settings: Settings,
) -> None:
    settings = presign_settings
    assert settings.s3_presign_access_key is not None
    presign_key = settings.s3_presign_access_key.get_secret_value()
    assert settings.s3_access_key is not None
    assert presign_key != settings.s3_access_key.get_secret_value()
    key = "users-usage/ws-acme/2026-01.csv"
    async with S3ObjectStore(settings, settings.exports_bucket) as store:
        await store.put(key, b"user_id\nu1\n")
        url = await store.presign_download(key, 60, filename="2026-01.csv")
    assert _credential(url) == presign_key
    assert await asyncio.to_thread(_fetch, url) == (200, b"user_id\nu1\n")


async def test_presign_identity_can_neither_write_nor_list_nor_read_other_buckets(
    presign_settings: Settings,
) -> None:
    settings = presign_settings
    async with open_s3_client(settings) as admin:
        await admin.put_object(Bucket=settings.exports_bucket, Key="f.csv", Body=b"x")
        await admin.put_object(Bucket=settings.aggregates_bucket, Key="api-keys/k.json", Body=b"{}")
    denied: list[str] = []
    async with open_s3_client(_as_presigner(settings)) as reader:
        attempts = {
            "put": reader.put_object(Bucket=settings.exports_bucket, Key="g.csv", Body=b"y"),
            "delete": reader.delete_object(Bucket=settings.exports_bucket, Key="f.csv"),
            "list": reader.list_objects_v2(Bucket=settings.exports_bucket),
            "read aggregates": reader.get_object(
                Bucket=settings.aggregates_bucket, Key="api-keys/k.json"
            ),
            "create bucket": reader.create_bucket(Bucket=f"{settings.exports_bucket}-x"),
        }
        for what, attempt in attempts.items():
            try:
                await attempt
            except ClientError as exc:
                if exc.response["ResponseMetadata"]["HTTPStatusCode"] == 403:
                    denied.append(what)
        put_url = await reader.generate_presigned_url(
            "put_object", Params={"Bucket": settings.exports_bucket, "Key": "h.csv"}, ExpiresIn=60
        )
        readable = await reader.get_object(Bucket=settings.exports_bucket, Key="f.csv")
        async with readable["Body"] as stream:
            assert await stream.read() == b"x"
    assert denied == list(attempts)
    status, _ = await asyncio.to_thread(_fetch, put_url, "PUT", b"z")
    assert status == 403
    async with open_s3_client(settings) as admin:
        listed = await admin.list_objects_v2(Bucket=settings.exports_bucket)
    assert sorted(item["Key"] for item in listed.get("Contents", [])) == ["f.csv"]
