"""Destinations: USAGE_DESTINATION_<NAME>_* parsing, and the exporter's copy (400 when not
configured, the copy under {prefix}/{type}/{period}/{filename}, idempotent, a refusal
503 and not recorded)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from services.exporter.destinations import DestinationCopier
from services.exporter.export_job import Exporter
from shared.columnar.tables import TableStore
from shared.destinations import Destination, DestinationConfigError, parse_destinations
from shared.domain.export.request_validation import (
    Rejected,
    ValidRequest,
    check_destination,
    validate_request,
)
from shared.errors import StoreRefused
from shared.settings import Settings
from tests.unit.memory_store import MemoryStore
from tests.unit.test_export_job import NOW, Clock, readable, seed


def test_destinations_are_parsed_from_their_variables() -> None:
    found = parse_destinations(
        {
            "USAGE_DESTINATION_ACME_ARCHIVE_BUCKET": "acme-usage",
            "USAGE_DESTINATION_ACME_ARCHIVE_ENDPOINT": "https://s3.eu.example",
            "USAGE_DESTINATION_ACME_ARCHIVE_PREFIX": "exports/usage/",
            "USAGE_DESTINATION_ACME_ARCHIVE_REGION": "eu-west-1",
            "USAGE_DESTINATION_ACME_ARCHIVE_ACCESS_KEY_ID": "AKIA1",
            "USAGE_DESTINATION_ACME_ARCHIVE_SECRET_ACCESS_KEY": "s3cret",
            "USAGE_DESTINATION_LAKE_BUCKET": "lake",
            "USAGE_S3_ENDPOINT": "http://ignored",
        }
    )
    assert sorted(found) == ["acme_archive", "lake"]
    acme = found["acme_archive"]
    assert (acme.bucket, acme.endpoint, acme.region, acme.access_key_id) == (
        "acme-usage",
        "https://s3.eu.example",
        "eu-west-1",
        "AKIA1",
    )
    assert acme.secret_access_key is not None
    assert "s3cret" not in repr(acme)
    assert acme.object_key("users", "2026-11-01_2026-11-30", "f.csv") == (
        "exports/usage/users/2026-11-01_2026-11-30/f.csv"
    )
    lake = found["lake"]
    assert lake.access_key_id is None
    assert lake.secret_access_key is None
    assert lake.object_key("models", "p", "f.csv") == "models/p/f.csv"


def test_a_destination_gets_its_own_store_settings_never_the_main_keys() -> None:
    settings = Settings(s3_access_key="main", s3_secret_key="main-secret")
    chain = Destination(name="lake", bucket="lake").store_settings(settings)
    assert chain.s3_access_key is None
    assert chain.s3_secret_key is None
    assert chain.s3_endpoint == settings.s3_endpoint
    own = parse_destinations(
        {
            "USAGE_DESTINATION_X_BUCKET": "b",
            "USAGE_DESTINATION_X_ENDPOINT": "http://127.0.0.1:9",
            "USAGE_DESTINATION_X_ACCESS_KEY_ID": "second",
            "USAGE_DESTINATION_X_SECRET_ACCESS_KEY": "second-secret",
        }
    )["x"].store_settings(settings)
    assert own.s3_endpoint == "http://127.0.0.1:9"
    assert own.s3_access_key is not None
    assert own.s3_access_key.get_secret_value() == "second"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"USAGE_DESTINATION_X_ENDPOINT": "http://h"}, "USAGE_DESTINATION_X_BUCKET is required"),
        (
            {"USAGE_DESTINATION_X_BUCKET": "b", "USAGE_DESTINATION_X_ACCESS_KEY_ID": "k"},
            "set both",
        ),
        ({"USAGE_DESTINATION_X_COLOUR": "red"}, "is not a destination setting"),
        ({"USAGE_DESTINATION__BUCKET": "b"}, "is not a destination setting"),
        ({"USAGE_DESTINATION_X-Y_BUCKET": "b"}, "must be"),
        ({"USAGE_DESTINATION_X_BUCKET": "b", "USAGE_DESTINATION_X_PREFIX": "a/../b"}, "'..'"),
        ({"USAGE_DESTINATION_X_BUCKET": "b", "USAGE_DESTINATION_X_PREFIX": ".."}, "'..'"),
        ({"USAGE_DESTINATION_X_BUCKET": "b", "USAGE_DESTINATION_X_PREFIX": "a//b"}, "'..'"),
        ({"USAGE_DESTINATION_X_BUCKET": "b", "USAGE_DESTINATION_X_PREFIX": "a\\b"}, "'..'"),
    ],
)
def test_incomplete_destinations_are_refused(environ: dict[str, str], expected: str) -> None:
    with pytest.raises(DestinationConfigError, match=expected):
        parse_destinations(environ)


def test_a_copy_key_never_leaves_its_prefix() -> None:
    destination = parse_destinations(
        {"USAGE_DESTINATION_X_BUCKET": "b", "USAGE_DESTINATION_X_PREFIX": "/team/usage/"}
    )["x"]
    assert destination.object_key("users", "2026-01-01_2026-01-31", "u.csv") == (
        "team/usage/users/2026-01-01_2026-01-31/u.csv"
    )
    for parts in [
        ("..", "2026-01-01_2026-01-31", "u.csv"),
        ("users", "../..", "u.csv"),
        ("users", "2026-01-01_2026-01-31", "../../other/u.csv"),
        ("users/../x", "p", "u.csv"),
        ("users", "p", ""),
    ]:
        with pytest.raises(ValueError, match="plain key segment"):
            destination.object_key(*parts)


def _exporter(tables: TableStore, store: MemoryStore, copier: DestinationCopier) -> Exporter:
    return Exporter(
        Settings(export_deadline_s=5),
        tables=tables,
        exports=store,
        clock=Clock(),
        destinations={"archive": copier},
    )


async def test_an_unconfigured_destination_is_a_400(tmp_path: Path) -> None:
    tables = TableStore.local(str(tmp_path / "aggregates"))
    await seed(tables)
    store, target = MemoryStore(), MemoryStore()
    copier = DestinationCopier(Destination(name="archive", bucket="b"), target)
    completion = await _exporter(tables, store, copier).answer(readable(destination="elsewhere"))
    assert completion.error is not None
    assert completion.error.status == 400
    assert "'elsewhere' is not configured" in completion.error.message
    assert "archive" in completion.error.message
    assert target.objects == {}


async def test_the_file_is_copied_once_under_prefix_type_period_filename(tmp_path: Path) -> None:
    tables = TableStore.local(str(tmp_path / "aggregates"))
    await seed(tables)
    store, target = MemoryStore(), MemoryStore()
    copier = DestinationCopier(Destination(name="archive", bucket="b", prefix="usage"), target)
    job = _exporter(tables, store, copier)
    first = await job.answer(readable(destination="archive"))
    assert first.success
    assert first.data is not None
    filename = first.data.filePath.rsplit("/", 1)[-1]
    key = f"usage/users/2026-01-01_2026-01-31/{filename}"
    assert list(target.objects) == [key]
    body, etag, metadata = target.objects[key]
    assert body == store.objects[first.data.filePath][0]
    assert metadata["sha256"] == hashlib.sha256(body).hexdigest()
    # The same request again (a re-published period) writes nothing anywhere.
    again = await job.answer(readable(destination="archive"))
    assert again.data is not None
    assert again.data.filePath == first.data.filePath
    assert target.objects[key][1] == etag
    # A copy already there with the same bytes is left alone by a fresh copier too.
    assert await copier.copy_needed(key, metadata["sha256"]) is False


async def test_a_refused_copy_is_a_503_and_the_request_is_not_settled(tmp_path: Path) -> None:
    tables = TableStore.local(str(tmp_path / "aggregates"))
    await seed(tables)
    store, target = MemoryStore(), MemoryStore()
    target.fail = StoreRefused
    copier = DestinationCopier(Destination(name="archive", bucket="b"), target)
    job = _exporter(tables, store, copier)
    refused = await job.answer(readable(destination="archive"))
    assert refused.error is not None
    assert refused.error.status == 503
    assert "refused" in refused.error.message
    target.fail = None
    retried = await job.answer(readable(destination="archive"))
    assert retried.success
    assert retried.data is not None
    assert len(target.objects) == 1


@pytest.mark.parametrize("name", ["Archive", "a-b", "", "_x", "x" * 64, 7])
def test_a_destination_of_another_shape_is_a_400(name: object) -> None:
    checked = validate_request(readable(destination=name), now=NOW)
    assert isinstance(checked, Rejected)
    assert "destination" in checked.message


def test_a_valid_destination_is_carried_and_checked_against_the_configured() -> None:
    checked = validate_request(readable(destination="archive_2"), now=NOW)
    assert isinstance(checked, ValidRequest)
    assert checked.destination == "archive_2"
    assert check_destination(checked, {"archive_2"}) is None
    refused = check_destination(checked, set())
    assert refused is not None
    assert "none are configured" in refused.message
    no_copy = validate_request(readable(), now=NOW)
    assert isinstance(no_copy, ValidRequest)
    assert no_copy.destination is None
    assert check_destination(no_copy, set()) is None
