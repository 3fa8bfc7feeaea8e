"""The embedded object store answers only on its S3 port (issue 13, finding 2).

An anonymous ``PUT /buckets/usage-aggregates/api-keys/<id>.json`` on the filer's HTTP
port used to create a key record the API then accepted. Here every non-S3 HTTP port of
the real ``weed server`` is asked, without credentials, to write, read and delete, and
must refuse; S3 with the stack's keys must keep working (the whole suite relies on it).
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from shared.embedded import EmbeddedStack
from shared.embedded.s3client import open_s3_client
from shared.embedded.store import WeedPorts
from shared.settings import Settings

from .conftest import InfraStack

FORM_BOUNDARY = "usage-export-test"
FORM_BODY = (
    f"--{FORM_BOUNDARY}\r\n"
    'Content-Disposition: form-data; name="file"; filename="k-forged.json"\r\n\r\n'
    '{"key_id": "k-forged", "workspace_id": "ws-victim"}\r\n'
    f"--{FORM_BOUNDARY}--\r\n"
).encode()
FORM_HEADERS = {"Content-Type": f"multipart/form-data; boundary={FORM_BOUNDARY}"}
#: A file id on volume 1 (every bucket of the stack has written a volume by now).
SOME_FILE_ID = "1,0a12345678"


@pytest.fixture
def embedded(stack: InfraStack) -> EmbeddedStack:
    if not isinstance(stack, EmbeddedStack):
        pytest.skip("concerns the embedded SeaweedFS store only")
    return stack


def _weed_ports(stack: EmbeddedStack) -> WeedPorts:
    """The ports of the running ``weed server``, read from its command line."""
    pid = stack.server_pids()["weed"]
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    flags = dict(arg.lstrip("-").split("=", 1) for arg in argv if "=" in arg)
    names = ("s3.port", "s3.port.grpc", "master.port", "master.port.grpc")
    names += ("volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc")
    return WeedPorts(*(int(flags[name]) for name in names))


def _anonymous(method: str, url: str, body: bytes | None = None, **headers: str) -> int | str:
    """HTTP status of an unauthenticated request, or the connection error's name."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return int(response.status)
    except urllib.error.HTTPError as error:
        with error:
            return error.code
    except OSError as error:  # refused: nothing listens there at all
        return type(error).__name__


def _refused(outcome: int | str) -> bool:
    return isinstance(outcome, str) or outcome in (401, 403, 404, 405)


async def _ask(method: str, url: str, body: bytes | None = None, **headers: str) -> int | str:
    return await asyncio.to_thread(_anonymous, method, url, body, **headers)


async def _exists(settings: Settings, bucket: str, key: str) -> bool:
    async with open_s3_client(settings) as client:
        try:
            await client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
                return False
            raise
    return True


async def test_filer_port_refuses_anonymous_writes_reads_and_deletes(
    embedded: EmbeddedStack, fresh_settings: Settings
) -> None:
    settings = fresh_settings
    filer = f"http://127.0.0.1:{_weed_ports(embedded).filer}/buckets/{settings.aggregates_bucket}"
    stored = "api-keys/k-real.json"
    async with open_s3_client(settings) as client:
        await client.put_object(Bucket=settings.aggregates_bucket, Key=stored, Body=b"{}")

    outcomes = {
        "PUT key record": await _ask("PUT", f"{filer}/api-keys/k-forged.json", b'{"x": 1}'),
        "POST form upload": await _ask("POST", f"{filer}/api-keys/", FORM_BODY, **FORM_HEADERS),
        "GET stored object": await _ask("GET", f"{filer}/{stored}"),
        "GET listing": await _ask("GET", f"{filer}/api-keys/", Accept="application/json"),
        "DELETE stored object": await _ask("DELETE", f"{filer}/{stored}"),
    }
    assert {what: outcome for what, outcome in outcomes.items() if not _refused(outcome)} == {}
    assert not await _exists(settings, settings.aggregates_bucket, "api-keys/k-forged.json")
    assert not await _exists(settings, settings.aggregates_bucket, "api-keys/k-forged.json.json")
    assert await _exists(settings, settings.aggregates_bucket, stored)


async def test_master_port_hands_out_no_file_ids_locations_or_admin(
    embedded: EmbeddedStack, fresh_settings: Settings
) -> None:
    master = f"http://127.0.0.1:{_weed_ports(embedded).master}"
    collection = fresh_settings.exports_bucket
    outcomes = {
        "assign (a write token)": await _ask("GET", f"{master}/dir/assign"),
        "lookup (where data is)": await _ask("GET", f"{master}/dir/lookup?volumeId=1"),
        "submit (a write)": await _ask("POST", f"{master}/submit", FORM_BODY, **FORM_HEADERS),
        "grow volumes": await _ask("GET", f"{master}/vol/grow?count=1&collection={collection}"),
        "volume status": await _ask("GET", f"{master}/vol/status"),
        "delete a bucket's data": await _ask("GET", f"{master}/col/delete?collection={collection}"),
    }
    assert {what: outcome for what, outcome in outcomes.items() if not _refused(outcome)} == {}
    assert await _can_write(fresh_settings, collection)


async def test_volume_port_refuses_unsigned_writes_reads_and_deletes(
    embedded: EmbeddedStack, fresh_settings: Settings
) -> None:
    volume = f"http://127.0.0.1:{_weed_ports(embedded).volume}"
    outcomes = {
        "POST a needle": await _ask("POST", f"{volume}/{SOME_FILE_ID}", FORM_BODY, **FORM_HEADERS),
        "GET a needle": await _ask("GET", f"{volume}/{SOME_FILE_ID}"),
        "DELETE a needle": await _ask("DELETE", f"{volume}/{SOME_FILE_ID}"),
    }
    assert {what: outcome for what, outcome in outcomes.items() if not _refused(outcome)} == {}
    assert await _can_write(fresh_settings, fresh_settings.aggregates_bucket)


async def _can_write(settings: Settings, bucket: str) -> bool:
    """S3 with the stack's keys: a small object, a multipart one and a copy round-trip."""
    async with open_s3_client(settings, timeout_s=30.0) as client:
        await client.put_object(Bucket=bucket, Key="probe/small", Body=b"small")
        upload = await client.create_multipart_upload(Bucket=bucket, Key="probe/large")
        parts = []
        for number, body in ((1, b"a" * (5 * 1024 * 1024)), (2, b"b" * 10)):
            part = await client.upload_part(
                Bucket=bucket,
                Key="probe/large",
                UploadId=upload["UploadId"],
                PartNumber=number,
                Body=body,
            )
            parts.append({"ETag": part["ETag"], "PartNumber": number})
        await client.complete_multipart_upload(
            Bucket=bucket,
            Key="probe/large",
            UploadId=upload["UploadId"],
            MultipartUpload={"Parts": parts},
        )
        await client.copy_object(
            Bucket=bucket, Key="probe/copy", CopySource={"Bucket": bucket, "Key": "probe/small"}
        )
        copied = await client.get_object(Bucket=bucket, Key="probe/copy")
        async with copied["Body"] as stream:
            small = await stream.read()
        large = await client.get_object(Bucket=bucket, Key="probe/large")
        async with large["Body"] as stream:
            size = len(await stream.read())
    return small == b"small" and size == 5 * 1024 * 1024 + 10


def test_data_directory_is_private_to_its_owner(embedded: EmbeddedStack) -> None:
    for directory in (embedded.data_dir, embedded.data_dir / "seaweedfs"):
        assert directory.stat().st_mode & 0o077 == 0, directory
