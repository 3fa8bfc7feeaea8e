"""Scenario 8: signed URLs and anonymous access. A completion's download URL works; every
altered, expired, re-targeted or forged variant of it is refused, and neither bucket
answers an anonymous read, list or write."""

from __future__ import annotations

import asyncio
import http.client
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aioboto3
from aiobotocore.config import AioConfig

from shared.adapters.export_client import export_request
from shared.adapters.s3 import S3ObjectStore
from shared.clock import system_clock
from shared.settings import Settings
from tests.integration.conftest import FreshSettingsFactory
from tests.integration.reliability.conftest import FiguresRecorder
from tests.integration.reliability.exports import bucket_keys, exporter_in_process
from tests.integration.reliability.streams import produce_paced
from tests.integration.reliability.tenants import ALPHA, BETA, workspace_events
from tests.integration.test_ingest import ingest_until_committed

# A URL signed to expire soon: X-Amz-Date has a one-second resolution, so a 1 s URL can
# be expired when first used; 5 s leaves room to use it, and then it is used past expiry.
SHORT_LIVED_S = 5


def expires_at(url: str) -> datetime:
    """The instant a presigned URL expires: its X-Amz-Date plus X-Amz-Expires."""
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    signed = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return signed + timedelta(seconds=int(query["X-Amz-Expires"]))


@dataclass(frozen=True)
class Attempt:
    what: str
    method: str
    url: str


def fetch(method: str, url: str) -> tuple[int, bytes]:
    """One raw HTTP request (no redirects, no path normalisation); status and body."""
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname == "127.0.0.1", url  # loopback only
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request(method, target, body=b"x" if method == "PUT" else None)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def replace_param(url: str, name: str, value: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = [
        (key, value if key == name else item)
        for key, item in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


async def forged_url(settings: Settings, key: str) -> str:
    """A URL presigned with the right access key and a guessed secret."""
    session = aioboto3.Session()
    config = AioConfig(signature_version="s3v4", s3={"addressing_style": "path"})
    assert settings.s3_access_key is not None
    async with session.client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        aws_access_key_id=settings.s3_access_key.get_secret_value(),
        aws_secret_access_key="guessed-secret",
        region_name=settings.s3_region,
        config=config,
    ) as client:
        url: str = await client.generate_presigned_url(
            "get_object", Params={"Bucket": settings.exports_bucket, "Key": key}, ExpiresIn=600
        )
        return url


async def test_only_an_intact_unexpired_signature_reads_a_file(
    make_fresh_settings: FreshSettingsFactory, figures: FiguresRecorder
) -> None:
    row = figures.row("8", "short")
    settings = await make_fresh_settings()
    now = system_clock()  # read once: every date of the scenario derives from it
    records = [(ALPHA.encode(), v) for v in workspace_events(ALPHA, "ALPHA", now)]
    records += [(BETA.encode(), v) for v in workspace_events(BETA, "BETA", now)]
    row.events = len(records)
    await ingest_until_committed(
        settings, await produce_paced(settings, settings.topic_events, records)
    )
    start, end = (now - timedelta(days=10)).date().isoformat(), now.date().isoformat()
    async with exporter_in_process(settings) as client:
        mine = await client.request(export_request(ALPHA, "users", start, end))
        theirs = await client.request(export_request(BETA, "users", start, end))
    assert mine.data is not None
    assert theirs.data is not None
    theirs_path = theirs.data.filePath
    url = mine.data.downloadUrl
    status, body = await asyncio.to_thread(fetch, "GET", url)
    assert status == 200
    assert body.startswith(b"period_start")

    base = settings.s3_endpoint.rstrip("/")
    exports, aggregates = settings.exports_bucket, settings.aggregates_bucket
    signature_at = url.index("X-Amz-Signature=") + len("X-Amz-Signature=")
    flipped = "0" if url[signature_at] != "0" else "1"
    some_commit = next(
        key for key in await bucket_keys(settings, aggregates) if "/_delta_log/" in key
    )
    async with S3ObjectStore(settings, exports) as store:
        short_lived = await store.presign_download(mine.data.filePath, SHORT_LIVED_S)
    assert (await asyncio.to_thread(fetch, "GET", short_lived))[0] == 200  # valid: it works
    attempts = [
        Attempt("signature altered", "GET", url[:signature_at] + flipped + url[signature_at + 1 :]),
        Attempt("signature removed", "GET", url.split("X-Amz-Signature=")[0].rstrip("&")),
        Attempt("expiry extended", "GET", replace_param(url, "X-Amz-Expires", "604800")),
        Attempt("date moved", "GET", replace_param(url, "X-Amz-Date", "20300101T000000Z")),
        Attempt("extra parameter", "GET", url + "&response-content-type=text%2Fhtml"),
        Attempt("other workspace's file", "GET", url.replace(mine.data.filePath, theirs_path)),
        Attempt("path climbing to it", "GET",
                url.replace(mine.data.filePath, f"users-usage/{ALPHA}/../{BETA}/"
                            + theirs.data.filePath.rsplit("/", 1)[1])),
        Attempt("written with a read URL", "PUT", url),
        Attempt("deleted with a read URL", "DELETE", url),
        Attempt("forged secret", "GET", await forged_url(settings, mine.data.filePath)),
        Attempt("anonymous read of the file", "GET", f"{base}/{exports}/{mine.data.filePath}"),
        Attempt("anonymous list of exports", "GET", f"{base}/{exports}?list-type=2"),
        Attempt("anonymous list (v1) of exports", "GET", f"{base}/{exports}/"),
        Attempt("anonymous list of aggregates", "GET", f"{base}/{aggregates}?list-type=2"),
        Attempt("anonymous read of aggregates", "GET", f"{base}/{aggregates}/{some_commit}"),
        Attempt("anonymous list of buckets", "GET", f"{base}/"),
        Attempt("anonymous write", "PUT", f"{base}/{exports}/{ALPHA}/planted.csv"),
        Attempt("anonymous delete", "DELETE", f"{base}/{exports}/{mine.data.filePath}"),
    ]  # fmt: skip
    # Past its expiry, with a second's margin for the store's one-second resolution.
    expiry = expires_at(short_lived)
    await asyncio.sleep(max(0.0, (expiry - system_clock()).total_seconds() + 1.5))
    assert system_clock() > expiry + timedelta(seconds=1)
    attempts.append(Attempt("expired", "GET", short_lived))
    answered = {a.what: await asyncio.to_thread(fetch, a.method, a.url) for a in attempts}
    granted = {what: status for what, (status, _) in answered.items() if status < 400}
    row.faults, row.fault_kinds = len(attempts), "tampered, expired, forged, anonymous"
    row.leaked = len(granted)
    row.exports = 2
    row.details["refusals"] = sorted({status for status, _ in answered.values()})
    assert not granted, granted
    assert {status for status, _ in answered.values()} <= {400, 401, 403, 405}
    # Nothing was written or deleted by the refused attempts.
    keys = await bucket_keys(settings, exports)
    assert mine.data.filePath in keys
    assert not [key for key in keys if "planted" in key]
    assert (await asyncio.to_thread(fetch, "GET", url))[0] == 200
