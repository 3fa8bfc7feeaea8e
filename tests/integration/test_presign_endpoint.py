"""Download URLs signed for the address their users reach (issue 16, item 2).

The services reach the store at ``USAGE_S3_ENDPOINT`` (in a cluster: a service name the
outside cannot resolve); ``USAGE_S3_PRESIGN_ENDPOINT`` is where the outside reaches the
same store. Here the two are two names of the one loopback store: ``127.0.0.1`` and
``localhost``. A URL signed for the second downloads the object, with the read-only
presign identity where the store has one; the same URL with its host put back to the
first is refused, because SigV4 signs the host: a URL cannot be re-pointed after signing.
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.parse
import urllib.request

import pytest

from shared.adapters.s3 import S3ObjectStore
from shared.settings import Settings

_OTHER_NAME = {"127.0.0.1": "localhost", "localhost": "127.0.0.1"}
BODY = b"user_id,events\nu1,3\n"


def _fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def _with_host(url: str, host: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return parts._replace(netloc=f"{host}:{parts.port}").geturl()


@pytest.fixture
def public_settings(fresh_settings: Settings) -> Settings:
    """``fresh_settings`` with the store's other loopback name as the presign endpoint."""
    store = urllib.parse.urlsplit(fresh_settings.s3_endpoint)
    other = _OTHER_NAME.get(store.hostname or "")
    if other is None:
        pytest.skip(f"the store at {fresh_settings.s3_endpoint} has no second loopback name")
    public = store._replace(netloc=f"{other}:{store.port}").geturl()
    return fresh_settings.model_copy(update={"s3_presign_endpoint": public})


async def _signed(settings: Settings, key: str) -> str:
    async with S3ObjectStore(settings, settings.exports_bucket) as store:
        await store.put(key, BODY, content_type="text/csv")
        return await store.presign_download(key, 300, filename=key.rsplit("/", 1)[-1])


async def test_a_url_signed_for_the_presign_endpoint_downloads_the_object(
    public_settings: Settings,
) -> None:
    assert public_settings.s3_presign_endpoint is not None
    url = await _signed(public_settings, "users-usage/ws-outside/2026-01.csv")
    assert url.startswith(
        f"{public_settings.s3_presign_endpoint}/{public_settings.exports_bucket}/"
    )
    assert await asyncio.to_thread(_fetch, url) == (200, BODY)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    signer = query["X-Amz-Credential"][0].split("/", 1)[0]
    presign_key = public_settings.s3_presign_access_key
    if presign_key is not None:  # the embedded store's read-only identity signs it
        assert signer == presign_key.get_secret_value()


async def test_the_signature_covers_the_host_so_a_rewritten_url_is_refused(
    public_settings: Settings,
) -> None:
    url = await _signed(public_settings, "users-usage/ws-outside/2026-02.csv")
    signed_host = urllib.parse.urlsplit(url).hostname or ""
    rewritten = _with_host(url, _OTHER_NAME[signed_host])
    status, body = await asyncio.to_thread(_fetch, rewritten)
    assert status == 403, body[:300]
    assert b"SignatureDoesNotMatch" in body
    # The store's own address signs for itself as before: its URLs work there.
    internal = public_settings.model_copy(update={"s3_presign_endpoint": None})
    own = await _signed(internal, "users-usage/ws-outside/2026-03.csv")
    assert urllib.parse.urlsplit(own).hostname != signed_host
    assert await asyncio.to_thread(_fetch, own) == (200, BODY)
