"""The schedule routes of the HTTP API (services/api/schedules.py) over an in-memory store:
create (201, validated as an export request), list, get, pause, resume, delete, the
workspace always the key's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from services.api.auth import Principal
from services.api.schedules import ScheduleRoutes
from services.scheduler.store import ScheduleStore
from shared.adapters.callback_vetting import CallbackVetter
from shared.clock import fixed_clock
from tests.unit.memory_store import MemoryStore

IPAddress = IPv4Address | IPv6Address
CREATED = datetime(2026, 6, 10, 9, 0, tzinfo=UTC)


@pytest_asyncio.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    store = ScheduleStore(MemoryStore(), clock=fixed_clock(CREATED))

    async def authorize(request: web.Request) -> Principal:
        return Principal(key_id="k1", org_id=request.headers["X-Test-Org"])

    async def resolve(host: str, port: int) -> list[IPAddress]:
        # hooks.example is public; anything else resolves to a private address.
        return [ip_address("93.184.215.14" if host == "hooks.example" else "10.0.0.7")]

    vetter = CallbackVetter(allow_private=False, allow_http=False, dns_timeout_s=1, resolve=resolve)
    app = web.Application()
    ScheduleRoutes(store, authorize, vetter).add_to(app.router, "")
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def _call(
    client: TestClient[web.Request, web.Application],
    method: str,
    path: str,
    org: str = "ws-1",
    body: dict[str, Any] | None = None,
) -> tuple[int, Any]:
    response = await client.request(method, path, json=body, headers={"X-Test-Org": org})
    return response.status, await response.json()


async def test_a_schedule_is_created_listed_paused_resumed_and_deleted(
    client: TestClient[web.Request, web.Application],
) -> None:
    body = {"type": "models", "every": "week", "timezone": "Australia/Lord_Howe"}
    status, created = await _call(client, "POST", "/schedules", body=body | {"group_by": "source"})
    assert status == 201, created
    data = created["data"]
    assert (data["type"], data["every"], data["groupBy"], data["state"]) == (
        "models",
        "week",
        "source",
        "active",
    )
    assert data["publishedThrough"] is None
    schedule_id = data["scheduleId"]
    status, listed = await _call(client, "GET", "/schedules")
    assert status == 200
    assert [item["scheduleId"] for item in listed["data"]] == [schedule_id]
    assert (await _call(client, "GET", "/schedules", org="ws-2"))[1]["data"] == []
    assert (await _call(client, "GET", f"/schedules/{schedule_id}", org="ws-2"))[0] == 404
    status, paused = await _call(client, "POST", f"/schedules/{schedule_id}/pause")
    assert (status, paused["data"]["state"]) == (200, "paused")
    status, resumed = await _call(client, "POST", f"/schedules/{schedule_id}/resume")
    assert (status, resumed["data"]["state"]) == (200, "active")
    assert (await _call(client, "DELETE", f"/schedules/{schedule_id}", org="ws-2"))[0] == 404
    assert (await _call(client, "DELETE", f"/schedules/{schedule_id}"))[0] == 200
    assert (await _call(client, "GET", f"/schedules/{schedule_id}"))[0] == 404


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"type": "projects", "every": "day", "timezone": "UTC", "group_by": "model"}, "group_by"),
        ({"type": "users", "every": "hour", "timezone": "UTC"}, "every"),
        ({"type": "users", "every": "day", "timezone": "Mars/Base"}, "IANA"),
        ({"type": "users", "every": "day", "timezone": "UTC", "destination": "A B"}, "destination"),
        ({"type": "users", "every": "day", "timezone": "UTC", "callback": "x"}, "callback"),
    ],
)
async def test_an_invalid_schedule_is_a_400(
    client: TestClient[web.Request, web.Application], body: dict[str, Any], expected: str
) -> None:
    status, answer = await _call(client, "POST", "/schedules", body=body)
    assert status == 400
    assert expected in answer["message"]


async def test_a_schedule_callback_is_vetted_then_kept_for_every_period(
    client: TestClient[web.Request, web.Application],
) -> None:
    body = {"type": "users", "every": "month", "timezone": "UTC"}
    for refused, why in (
        ("https://internal.example/hook", "private address"),
        ("http://hooks.example/hook", "must use https"),
    ):
        status, answer = await _call(
            client, "POST", "/schedules", body=body | {"callback_url": refused}
        )
        assert status == 400, (refused, answer)
        assert answer["message"].startswith("callback_url"), answer
        assert why in answer["message"], answer
    status, created = await _call(
        client, "POST", "/schedules", body=body | {"callback_url": "https://hooks.example/hook"}
    )
    assert status == 201, created
    assert created["data"]["callbackUrl"] == "https://hooks.example/hook"
    _, listed = await _call(client, "GET", "/schedules")
    assert [s["callbackUrl"] for s in listed["data"]] == ["https://hooks.example/hook"]
