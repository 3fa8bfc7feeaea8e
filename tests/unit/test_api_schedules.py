"""The schedule routes of the HTTP API (services/api/schedules.py) over an in-memory store:
create (201, validated as an export request), list, get, pause, resume, delete, the
workspace always the key's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from services.api.auth import Principal
from services.api.schedules import ScheduleRoutes
from services.scheduler.store import ScheduleStore
from shared.clock import fixed_clock
from tests.unit.memory_store import MemoryStore

CREATED = datetime(2026, 6, 10, 9, 0, tzinfo=UTC)


@pytest_asyncio.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    store = ScheduleStore(MemoryStore(), clock=fixed_clock(CREATED))

    async def authorize(request: web.Request) -> Principal:
        return Principal(key_id="k1", org_id=request.headers["X-Test-Org"])

    app = web.Application()
    ScheduleRoutes(store, authorize).add_to(app.router, "")
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
