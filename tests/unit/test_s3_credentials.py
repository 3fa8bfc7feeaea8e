"""S3 credentials and download URLs (issue 16, items 2 and 4), signed locally, no network:
with no static key the default AWS chain signs (here its first link, the AWS_* variables);
with none anywhere the failure names the settings; download URLs are signed for
``USAGE_S3_PRESIGN_ENDPOINT`` (with the presign identity when there is one)."""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from services.api.keys import PepperUnset, pepper_of
from shared.adapters.s3 import S3ObjectStore
from shared.columnar.tables import storage_options
from shared.errors import StoreRefused
from shared.settings import Settings

STORE = "http://127.0.0.1:1"  # loopback, nothing listens: signing is local
PUBLIC = "https://downloads.example.com"
KEYS = {"s3_access_key": SecretStr("admin"), "s3_secret_key": SecretStr("admin-secret")}
PRESIGN_KEYS = {
    "s3_presign_access_key": SecretStr("reader"),
    "s3_presign_secret_key": SecretStr("reader-secret"),
}


@pytest.fixture
def no_aws_identity(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No link of the default chain finds anything: no variables, no files, no metadata."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _settings(**values: Any) -> Settings:
    return Settings(s3_endpoint=STORE, **values)


async def _presigned(settings: Settings) -> urllib.parse.SplitResult:
    async with S3ObjectStore(settings, settings.exports_bucket) as store:
        url = await store.presign_download("users-usage/ws-1/f.csv", 600, filename="f.csv")
    return urllib.parse.urlsplit(url)


def _signer(url: urllib.parse.SplitResult) -> str:
    credential = urllib.parse.parse_qs(url.query)["X-Amz-Credential"][0]
    return credential.split("/", 1)[0]


# ---- credentials ---------------------------------------------------------------------------
def test_s3_keys_are_unset_by_default_and_come_in_pairs() -> None:
    settings = Settings()
    assert settings.s3_access_key is None
    assert settings.s3_secret_key is None
    with pytest.raises(ValidationError, match="USAGE_S3_ACCESS_KEY and USAGE_S3_SECRET_KEY"):
        Settings(s3_access_key=SecretStr("admin"))


@pytest.mark.usefixtures("no_aws_identity")
async def test_with_no_static_key_the_default_chain_signs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "FROM-THE-CHAIN")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "chain-secret")
    assert _signer(await _presigned(_settings())) == "FROM-THE-CHAIN"
    # A static pair still wins over the chain.
    assert _signer(await _presigned(_settings(**KEYS))) == "admin"


@pytest.mark.usefixtures("no_aws_identity")
async def test_with_no_credentials_anywhere_the_refusal_names_the_settings() -> None:
    with pytest.raises(StoreRefused, match="USAGE_S3_ACCESS_KEY and USAGE_S3_SECRET_KEY"):
        await _presigned(_settings())
    async with S3ObjectStore(_settings(s3_max_attempts=5), "b") as store:
        with pytest.raises(StoreRefused, match="no S3 credentials"):
            await store.get("k")  # refused at once: no retry can find keys


def test_delta_rs_gets_the_static_keys_or_none_for_its_own_default_chain() -> None:
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}.isdisjoint(storage_options(_settings()))
    options = storage_options(_settings(**KEYS))
    assert options["AWS_ACCESS_KEY_ID"] == "admin"
    assert options["AWS_SECRET_ACCESS_KEY"] == "admin-secret"


def test_the_api_keys_pepper_must_be_set_when_there_is_no_store_secret() -> None:
    with pytest.raises(PepperUnset, match="USAGE_API_KEY_PEPPER"):
        pepper_of(Settings())
    assert pepper_of(Settings(api_key_pepper=SecretStr("pepper"))).secret == b"pepper"


# ---- the presign endpoint -------------------------------------------------------------------
async def test_urls_are_signed_for_the_store_endpoint_by_default() -> None:
    url = await _presigned(_settings(**KEYS))
    assert f"{url.scheme}://{url.netloc}" == STORE
    assert _signer(url) == "admin"


@pytest.mark.parametrize(
    ("presign_keys", "signer"), [({}, "admin"), (PRESIGN_KEYS, "reader")]
)  # fmt: skip
async def test_urls_are_signed_for_the_presign_endpoint_with_the_presign_identity(
    presign_keys: dict[str, SecretStr], signer: str
) -> None:
    settings = _settings(s3_presign_endpoint=PUBLIC, **KEYS | presign_keys)
    url = await _presigned(settings)
    assert f"{url.scheme}://{url.netloc}" == PUBLIC
    assert url.path == f"/{settings.exports_bucket}/users-usage/ws-1/f.csv"
    assert _signer(url) == signer
    query = urllib.parse.parse_qs(url.query)
    assert query["X-Amz-SignedHeaders"] == ["host"], "the host is signed: never rewrite it"
