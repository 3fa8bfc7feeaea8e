"""The HTTP API end to end on the real broker and store: every route and every error of
the reference documentation, the docs' own curl call, the /json variant, idempotency,
browser-origin refusal and the rate limit.

One workspace of hand-made events is ingested once per module; ingest, exporter and API
then run in this process and are called over HTTP on loopback.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import io
import shutil
import urllib.request
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
import pytest
import pytest_asyncio

from services.api import app as app_module
from services.api.keys import USAGE_EXPORT_SCOPE, KeyStore, pepper_of
from services.api.rate_limit import RateLimiter
from services.api.routes import EXPORT_ROUTES
from shared import codec
from shared.adapters.s3 import S3ObjectStore
from shared.embedded import ensure_infrastructure, isolated_settings
from shared.settings import Settings
from tests.integration.api_tools import call, create_key, running_api, window
from tests.integration.conftest import InfraStack
from tests.integration.kafka_tools import produce, wait_until_committed
from tests.integration.test_exporter import EDGE_DAY, EDGE_ORG, edge_events, running_services

FROM, TO = (EDGE_DAY - timedelta(days=1)).isoformat(), (EDGE_DAY + timedelta(days=1)).isoformat()
QUIET = ((EDGE_DAY - timedelta(days=100)).isoformat(), (EDGE_DAY - timedelta(days=90)).isoformat())
REFERENCE_FIELDS = {"filePath", "downloadUrl", "dataType", "recordCount", "dateRange"}
#: Ours beside the reference's (clients may ignore them).
ADDED_FIELDS = {"format", "ingestedThrough"}


@dataclass(frozen=True)
class Api:
    settings: Settings
    url: str
    key: str
    metrics_url: str


@pytest_asyncio.fixture(scope="module")
async def api(stack: InfraStack) -> AsyncIterator[Api]:
    # Every route at once from one workspace: more than the default exports in flight.
    base = stack.settings.model_copy(
        update={
            "ingest_metrics_port": 0,
            "exporter_metrics_port": 0,
            "api_timeout_s": 60.0,
            "api_max_exports_per_workspace": 64,
        }
    )
    settings = isolated_settings(base, "api" + uuid.uuid4().hex[:10])
    await ensure_infrastructure(settings)
    ends = await produce(
        settings, settings.topic_events, [(EDGE_ORG.encode(), value) for value in edge_events()]
    )
    async with running_services(settings), running_api(settings) as serving:
        await wait_until_committed(settings, settings.ingest_group, settings.topic_events, ends)
        key = await create_key(settings, EDGE_ORG, name="tests")
        yield Api(settings=settings, url=serving.api_url, key=key, metrics_url=serving.metrics_url)


async def test_every_route_answers_the_reference_body(api: Api) -> None:
    expected_kind = {"users": "users", "assistants": "agents", "api_keys": "api-keys"}
    file_routes = [route for route in EXPORT_ROUTES if route.variant != "json"]
    for prefix in ("", "/api/public"):
        answers = await asyncio.gather(
            *(
                call(f"{api.url}{prefix}{route.path}", key=api.key, body=window(FROM, TO))
                for route in file_routes
            )
        )
        for route, answer in zip(file_routes, answers, strict=True):
            assert answer.status == 200, (route.path, answer.body)
            assert set(answer.body) == {"success", "data"}
            assert answer.body["success"] is True
            data = answer.body["data"]
            assert set(data) == REFERENCE_FIELDS | ADDED_FIELDS
            assert data["format"] == "csv"
            assert set(data["dateRange"]) == {"from", "to"}
            assert data["dataType"] == route.data_type.value
            kind = expected_kind.get(route.data_type.value, route.data_type.value)
            assert data["filePath"].startswith(f"{kind}-usage/{EDGE_ORG}/")
            assert data["recordCount"] > 0


async def test_download_url_serves_the_file_and_json_variant_has_its_rows(api: Api) -> None:
    body = window(FROM, TO, group_by="model")
    file_answer = await call(f"{api.url}/export/users", key=api.key, body=body)
    rows_answer = await call(f"{api.url}/export/users/json", key=api.key, body=body)
    assert (file_answer.status, rows_answer.status) == (200, 200)
    url = file_answer.body["data"]["downloadUrl"]
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - our own store
        csv_rows = list(csv.DictReader(io.StringIO(response.read().decode())))
    data = rows_answer.body["data"]
    assert data["rows"] == csv_rows
    assert data["recordCount"] == len(csv_rows) == file_answer.body["data"]["recordCount"]
    assert data["columns"][:5] == ["period_start", "period_end", "org_id", "user_id", "model"]


async def test_a_format_is_asked_in_the_body_and_refused_by_the_json_variant(api: Api) -> None:
    body = window(FROM, TO) | {"format": "parquet"}
    answer = await call(f"{api.url}/export/models", key=api.key, body=body)
    assert answer.status == 200, answer.body
    data = answer.body["data"]
    assert data["format"] == "parquet"
    assert data["filePath"].endswith(".parquet")
    with urllib.request.urlopen(data["downloadUrl"], timeout=30) as response:  # noqa: S310
        assert response.headers["Content-Type"] == "application/vnd.apache.parquet"
        assert response.read(4) == b"PAR1"
    refused = await call(f"{api.url}/export/models/json", key=api.key, body=body)
    assert refused.status == 400
    assert "format 'parquet'" in refused.body["message"]
    unknown = await call(f"{api.url}/export/models", key=api.key, body=body | {"format": "xls"})
    assert unknown.status == 400
    assert "format" in unknown.body["message"]


async def test_a_bucket_is_asked_in_the_body_of_every_variant(api: Api) -> None:
    body = window(FROM, TO) | {"bucket": "day"}
    answer = await call(f"{api.url}/export/models/json", key=api.key, body=body)
    assert answer.status == 200, answer.body
    data = answer.body["data"]
    assert data["columns"][:5] == [
        "period_start", "period_end", "bucket_start", "bucket_end", "org_id",
    ]  # fmt: skip
    starts = [row["bucket_start"] for row in data["rows"]]
    assert starts == sorted(starts)
    assert starts  # this key's workspace uses models on one day of the window
    for row in data["rows"]:  # a day each, within the window
        assert row["bucket_start"] == row["bucket_end"]
        assert FROM <= row["bucket_start"] <= TO
    whole = await call(f"{api.url}/export/models/json", key=api.key, body=window(FROM, TO))

    def model(row: dict[str, str]) -> tuple[str, str, str]:
        return row["name"], row["provider"], row["bring_your_keys"]

    summed: dict[tuple[str, str, str], int] = {}
    for row in data["rows"]:
        summed[model(row)] = summed.get(model(row), 0) + int(row["requests"])
    assert summed == {model(row): int(row["requests"]) for row in whole.body["data"]["rows"]}
    unknown = await call(f"{api.url}/export/models", key=api.key, body=body | {"bucket": "hour"})
    assert unknown.status == 400
    assert "bucket" in unknown.body["message"]


async def test_json_variant_refuses_exports_above_its_bound(api: Api) -> None:
    small = api.settings.model_copy(update={"api_json_max_rows": 1})
    async with running_api(small) as serving:
        answer = await call(
            f"{serving.api_url}/export/users/json", key=api.key, body=window(FROM, TO)
        )
    assert answer.status == 413
    assert answer.body["error"] == "Request Entity Too Large"
    assert "without /json" in answer.body["message"]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_the_docs_curl_example_works_unchanged(api: Api) -> None:
    """The exact call of the reference docs: its 2024 window is now over 12 months ago."""
    docs_body = (
        '{"from": {"date": "2024-01-01T00:00:00.000Z", "timezone": "UTC"}, '
        '"to": {"date": "2024-01-31T23:59:59.999Z", "timezone": "UTC"}}'
    )
    recent_body = docs_body.replace("2024-01-01", FROM).replace("2024-01-31", TO)
    answers = []
    for body in (docs_body, recent_body):
        process = await asyncio.create_subprocess_exec(
            "curl", "--silent", "--show-error", "--request", "POST",
            "--url", f"{api.url}/export/models",
            "--header", f"Authorization: Bearer {api.key}",
            "--header", "Content-Type: application/json",
            "--data", body,
            "--write-out", "\n%{http_code}",
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        output, _ = await process.communicate()
        text, _, status = output.decode().rpartition("\n")
        answers.append((int(status), codec.loads(text)))
    (old_status, old), (new_status, new) = answers
    assert old_status == 400
    assert set(old) == {"error", "message"}
    assert old["error"] == "Bad Request"
    assert "12 months" in old["message"]
    assert new_status == 200
    assert new["success"] is True
    assert new["data"]["dataType"] == "models"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"not json", "must be JSON"),
        (b"[1, 2]", "JSON object"),
        (codec.dumps({"to": {"date": "2026-01-01", "timezone": "UTC"}}), "'from'"),
        (codec.dumps(window("2026-01-01", "2026-01-02") | {"to": {"date": "x"}}), "'to"),
        (codec.dumps(window(TO, FROM)), "before"),
        (codec.dumps(window("2026-13-45", TO)), "from.date"),
        (codec.dumps(window(FROM, TO, timezone="Mars/Olympus")), "IANA"),
        (codec.dumps(window(FROM, TO, group_by="source")), "group_by"),
        (codec.dumps(window("2020-01-01", TO)), "12 months"),
    ],
)
async def test_bad_bodies_are_400_with_a_reason(api: Api, body: bytes, fragment: str) -> None:
    answer = await call(f"{api.url}/export/users", key=api.key, raw=body)
    assert answer.status == 400
    assert answer.body["error"] == "Bad Request"
    assert fragment in answer.body["message"]


async def test_an_oversized_body_is_413_with_the_error_body(api: Api) -> None:
    padded = window(FROM, TO) | {"padding": "x" * 100_000}
    answer = await call(f"{api.url}/export/users", key=api.key, body=padded)
    assert answer.status == 413
    assert set(answer.body) == {"error", "message"}


async def test_group_by_of_another_type_and_no_data(api: Api) -> None:
    projects = await call(
        f"{api.url}/export/projects", key=api.key, body=window(FROM, TO, group_by="model")
    )
    assert projects.status == 400
    quiet = await call(f"{api.url}/export/models", key=api.key, body=window(*QUIET))
    assert quiet.status == 404
    assert quiet.body == {"error": "No data found", "message": quiet.body["message"]}


async def test_every_kind_of_bad_key_is_401(api: Api) -> None:
    async with S3ObjectStore(api.settings, api.settings.aggregates_bucket) as store:
        keys = KeyStore(store, pepper=pepper_of(api.settings))
        revoked, record = await keys.create(EDGE_ORG)
        await keys.revoke(EDGE_ORG, record.key_id)
        other_scope, _ = await keys.create(EDGE_ORG, scopes=("chat",))
    tampered = api.key[:-4] + ("AAAA" if not api.key.endswith("AAAA") else "BBBB")
    cases = {
        "missing": {},
        "not bearer": {"Authorization": f"Basic {api.key}"},
        "malformed": {"Authorization": "Bearer nonsense"},
        "unknown": {"Authorization": "Bearer ue_0123456789abcdef_" + "x" * 43},
        "wrong secret": {"Authorization": f"Bearer {tampered}"},
        "revoked": {"Authorization": f"Bearer {revoked}"},
        "wrong scope": {"Authorization": f"Bearer {other_scope}"},
    }
    for name, headers in cases.items():
        answer = await call(f"{api.url}/export/users", headers=headers, body=window(FROM, TO))
        assert answer.status == 401, name
        assert answer.body["error"] == "Unauthorized", name
        assert set(answer.body) == {"error", "message"}
    assert USAGE_EXPORT_SCOPE == "usage-export"


async def test_the_workspace_comes_from_the_key_never_the_body(api: Api) -> None:
    stranger = await create_key(api.settings, "ws-stranger")
    body = window(FROM, TO) | {"org_id": EDGE_ORG, "workspace_id": EDGE_ORG}
    answer = await call(f"{api.url}/export/users", key=stranger, body=body)
    assert answer.status == 404  # the stranger's workspace has no data
    assert answer.body["error"] == "No data found"


async def test_browser_origin_is_refused(api: Api) -> None:
    answer = await call(
        f"{api.url}/export/users",
        key=api.key,
        body=window(FROM, TO),
        headers={"Origin": "https://evil.example"},
    )
    assert answer.status == 403
    assert answer.body["error"] == "Forbidden"
    assert "Browser" in answer.body["message"]


async def test_unknown_routes_and_methods_answer_the_error_body(api: Api) -> None:
    missing = await call(f"{api.url}/export/workflows", key=api.key, body=window(FROM, TO))
    assert (missing.status, missing.body["error"]) == (404, "Not Found")
    wrong_method = await call(f"{api.url}/export/users", method="GET", key=api.key)
    assert (wrong_method.status, wrong_method.body["error"]) == (405, "Method Not Allowed")
    assert wrong_method.headers["Allow"] == "POST", "RFC 9110: a 405 names what is allowed"
    status_path = await call(f"{api.url}/export/requests/r-1", method="DELETE", key=api.key)
    assert status_path.status == 405
    assert status_path.headers["Allow"] in ("GET", "GET, HEAD")


async def test_rate_limit_answers_429_with_retry_after(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Time is the test's: the limiter's clock stands still unless the test moves it, so
    the calls need not fit in the 30 s a token takes to come back.

    ``run_api`` builds its ``RateLimiter`` with the default clock and has no parameter for
    it, so the clock is put in where ``services.api.app`` names the class."""
    now = [1000.0]
    monkeypatch.setattr(
        app_module, "RateLimiter", functools.partial(RateLimiter, clock=lambda: now[0])
    )
    limited = api.settings.model_copy(update={"api_rate_limit_per_min": 2})
    async with running_api(limited) as serving:
        url = f"{serving.api_url}/export/projects"
        answers = [await call(url, key=api.key, raw=b"{}") for _ in range(3)]
        now[0] += 29.0  # not yet a whole token back (2 a minute: one every 30 s)
        answers.append(await call(url, key=api.key, raw=b"{}"))
        now[0] += 1.0
        answers.extend([await call(url, key=api.key, raw=b"{}") for _ in range(2)])
    assert [answer.status for answer in answers] == [400, 400, 429, 429, 400, 429]
    refused = [answer for answer in answers if answer.status == 429]
    assert [answer.body["error"] for answer in refused] == ["Too Many Requests"] * 3
    assert [answer.headers["Retry-After"] for answer in refused] == ["30", "1", "30"]


async def test_idempotency_key_gives_the_same_export(api: Api) -> None:
    headers = {"Idempotency-Key": f"client-{uuid.uuid4().hex}"}
    first = await call(
        f"{api.url}/export/agents", key=api.key, body=window(FROM, TO), headers=headers
    )
    again = await call(
        f"{api.url}/export/agents", key=api.key, body=window(FROM, TO), headers=headers
    )
    assert first.status == again.status == 200
    assert first.body["data"]["filePath"] == again.body["data"]["filePath"]
    assert first.body["data"]["filePath"].endswith(f"-{headers['Idempotency-Key'][:8]}.csv")
    status = await call(
        f"{api.url}/export/requests/{headers['Idempotency-Key']}", method="GET", key=api.key
    )
    assert status.status == 200
    assert status.body["data"]["filePath"] == first.body["data"]["filePath"]
    stranger = await create_key(api.settings, "ws-stranger2")
    foreign = await call(
        f"{api.url}/export/requests/{headers['Idempotency-Key']}", method="GET", key=stranger
    )
    assert foreign.status == 404  # another workspace never sees this request
    bad = await call(
        f"{api.url}/export/agents",
        key=api.key,
        body=window(FROM, TO),
        headers={"Idempotency-Key": "../escape"},
    )
    assert bad.status == 400


async def test_metrics_and_health_of_the_api(api: Api) -> None:
    await call(f"{api.url}/export/projects", key=api.key, body=window(FROM, TO))
    await call(f"{api.url}/export/projects", body=window(FROM, TO))
    ready = await call(f"{api.metrics_url}/health/ready", method="GET")
    assert ready.status == 200
    assert ready.body["checks"]["completions reader"] == "ok"
    async with aiohttp.ClientSession() as session, session.get(f"{api.metrics_url}/metrics") as r:
        metrics = await r.text()
    assert 'usage_api_requests_total{route="projects",status="200"}' in metrics
    assert 'usage_api_auth_failures_total{reason="missing"}' in metrics
