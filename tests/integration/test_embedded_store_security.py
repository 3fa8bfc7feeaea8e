"""The embedded object store answers only on its S3 port (issue 13, finding 2).

An anonymous ``PUT /buckets/usage-aggregates/api-keys/<id>.json`` on the filer's HTTP
port used to create a key record the API then accepted. Here every non-S3 HTTP port of
the real ``weed server`` is asked, without credentials, to write, read and delete, and
must refuse; S3 with the stack's keys must keep working (the whole suite relies on it).

Its gRPC ports (master, volume, filer, S3) answered anyone on loopback too: a plain
HTTP/2 connection got the server's SETTINGS, so any local process could call the filer's
CreateEntry and forge or alter objects. Now each wants mutual TLS with a certificate of
the CA made at this start: plain-text and certificate-less TLS clients are refused, and
only the stack's own client certificate gets an HTTP/2 answer (the control).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from botocore.exceptions import ClientError

from shared.embedded import EmbeddedStack
from shared.embedded.certificates import write_grpc_certificates
from shared.embedded.s3client import open_s3_client
from shared.embedded.store import WeedPorts, unix_socket_paths
from shared.settings import Settings

from .conftest import InfraStack

if TYPE_CHECKING:
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

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
#: What a gRPC client sends first: the HTTP/2 connection preface and an empty SETTINGS.
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000")
HTTP2_SETTINGS_FRAME_TYPE = 0x04


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
    names: tuple[str, ...] = ("s3.port", "s3.port.grpc", "master.port", "master.port.grpc")
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
        parts: list[CompletedPartTypeDef] = []
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


# ---- gRPC: mutual TLS ---------------------------------------------------------------------


def _grpc_ports(stack: EmbeddedStack) -> dict[str, int]:
    ports = _weed_ports(stack)
    return {
        "master": ports.master_grpc,
        "volume": ports.volume_grpc,
        "filer": ports.filer_grpc,
        "s3": ports.s3_grpc,
    }


def _grpc_sockets(stack: EmbeddedStack) -> list[Path]:
    """The Unix sockets ``weed`` serves gRPC on beside its TCP ports (``/tmp``)."""
    return [path for path in unix_socket_paths(_weed_ports(stack)) if "-grpc-" in path.name]


def _http2_answered(answer: bytes) -> bool:
    """Whether ``answer`` starts with an HTTP/2 SETTINGS frame: a gRPC server talking."""
    return len(answer) >= 9 and answer[3] == HTTP2_SETTINGS_FRAME_TYPE


def _plain_http2(address: tuple[str, int] | str) -> bytes:
    """The first bytes a server answers to a plain-text HTTP/2 preface (b"" if it hangs up)."""
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as connection:
        connection.settimeout(5)
        connection.connect(address)
        connection.sendall(HTTP2_PREFACE)
        try:
            return connection.recv(64)
        except (TimeoutError, ConnectionError):
            return b""


def _tls_http2(port: int, ca: Path, client: tuple[Path, Path] | None) -> bytes | str:
    """HTTP/2 over TLS 1.3, the server's certificate checked against ``ca``, presenting
    ``client`` (certificate, key) or nothing. The answer's first bytes, or the TLS error.

    With TLS 1.3 the client's side of the handshake ends before the server has checked
    the client's certificate: a server that wants one answers the first read with an
    alert (certificate required, bad certificate, unknown CA).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_verify_locations(cafile=ca)
    context.set_alpn_protocols(["h2"])
    if client is not None:
        context.load_cert_chain(*client)
    # The handshake itself must succeed: the server is a TLS server with the stack's CA.
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as connection,
    ):
        try:
            connection.sendall(HTTP2_PREFACE)
            return connection.recv(64)
        except ssl.SSLError as error:
            return error.reason or type(error).__name__
        except (TimeoutError, ConnectionError) as error:
            return type(error).__name__


async def test_grpc_ports_refuse_plain_text_connections(embedded: EmbeddedStack) -> None:
    """Before: every gRPC port answered a plain HTTP/2 preface with its SETTINGS."""
    targets: dict[str, tuple[str, int] | str] = {
        f"{name} :{port}": ("127.0.0.1", port) for name, port in _grpc_ports(embedded).items()
    }
    targets |= {path.name: str(path) for path in _grpc_sockets(embedded) if path.exists()}
    assert len(targets) >= 4
    answers = {what: await asyncio.to_thread(_plain_http2, to) for what, to in targets.items()}
    assert {what: answer for what, answer in answers.items() if _http2_answered(answer)} == {}


async def test_grpc_ports_refuse_tls_clients_without_the_stacks_certificate(
    embedded: EmbeddedStack, tmp_path: Path
) -> None:
    """No client certificate, or one of another CA: refused. The stack's own client
    certificate: an HTTP/2 answer (so the refusals are about the certificate)."""
    tls = embedded.data_dir / "seaweedfs" / "grpc-tls"
    own = (tls / "client.crt", tls / "client.key")
    stranger = write_grpc_certificates(tmp_path / "stranger")
    foreign = (stranger.certs["client"], stranger.keys["client"])
    refused: dict[str, bytes | str] = {}
    for name, port in _grpc_ports(embedded).items():
        for who, client in (("no certificate", None), ("another CA's", foreign)):
            answer = await asyncio.to_thread(_tls_http2, port, tls / "ca.crt", client)
            if not isinstance(answer, str) and _http2_answered(answer):
                refused[f"{name} with {who}"] = answer
        answer = await asyncio.to_thread(_tls_http2, port, tls / "ca.crt", own)
        assert isinstance(answer, bytes), (name, answer)
        assert _http2_answered(answer), (name, answer)
    assert refused == {}


def test_grpc_keys_are_private_and_the_ca_key_is_not_kept(embedded: EmbeddedStack) -> None:
    tls = embedded.data_dir / "seaweedfs" / "grpc-tls"
    assert tls.stat().st_mode & 0o077 == 0
    assert all(path.stat().st_mode & 0o077 == 0 for path in tls.iterdir())
    keys = sorted(path.name for path in tls.glob("*.key"))
    assert keys == ["client.key", "filer.key", "master.key", "s3.key", "volume.key"]
