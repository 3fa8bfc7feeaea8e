"""The schedule management routes: a workspace's scheduled exports over HTTP.

``POST /schedules`` creates one (201), ``GET /schedules`` lists them, ``GET`` and
``DELETE /schedules/{id}`` read and delete one, ``POST /schedules/{id}/pause`` and
``/resume`` change its state. The workspace is always the API key's. A schedule is
validated as an export request is (``shared.domain.schedules.schedule_problem``: 400 with
the exporter's message); an id this workspace does not have is 404. The guard of
``services.api.handlers`` (origin, route, key, rate, 503 when the store is away) runs
first, as for every route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.api.auth import Principal
from services.api.responses import error_response, json_response
from services.scheduler.store import ScheduleError, ScheduleStore
from shared import codec
from shared.adapters.callback_vetting import CallbackRefused, CallbackVetter
from shared.contracts.destinations import DestinationName
from shared.contracts.export_buckets import BucketUnit
from shared.contracts.export_formats import ExportFormat
from shared.contracts.ids import is_valid_id
from shared.domain.schedules import Schedule
from shared.domain.window import format_instant

SCHEDULES_PATH = "/schedules"
SCHEDULE_PATH = "/schedules/{schedule_id}"
PAUSE_PATH = "/schedules/{schedule_id}/pause"
RESUME_PATH = "/schedules/{schedule_id}/resume"
#: (method, path) of every schedule route, for the router and the OpenAPI document.
SCHEDULE_ROUTES = (
    ("POST", SCHEDULES_PATH),
    ("GET", SCHEDULES_PATH),
    ("GET", SCHEDULE_PATH),
    ("DELETE", SCHEDULE_PATH),
    ("POST", PAUSE_PATH),
    ("POST", RESUME_PATH),
)

Authorize = Callable[[web.Request], Awaitable[Principal]]


class ScheduleBody(BaseModel):
    """Request body of ``POST /schedules``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = Field(
        description="users, assistants (alias agents), api_keys (or api-keys), projects, models"
    )
    every: BucketUnit = Field(description="day, week (ISO, Monday to Sunday) or month")
    timezone: str = Field(description="IANA timezone of the periods", max_length=64)
    group_by: str | None = Field(default=None, description="as for an export")
    bucket: BucketUnit | None = Field(default=None, description="as for an export")
    format: ExportFormat | None = Field(default=None, description="as for an export")
    destination: DestinationName | None = Field(
        default=None, description="a destination the exporter has configured"
    )
    callback_url: str | None = Field(
        default=None,
        max_length=2048,
        description="https URL each period's completion is POSTed to, signed (as for an "
        "export: refused when its host resolves to a non-public address)",
    )


class ScheduleData(BaseModel):
    """A schedule as the API shows it."""

    scheduleId: str
    type: str
    every: str
    timezone: str
    groupBy: str | None
    bucket: str | None
    format: str | None
    destination: str | None
    callbackUrl: str | None
    state: str = Field(description="active or paused")
    createdAt: str
    publishedThrough: str | None = Field(
        description="last day of the newest period published (null: none yet)"
    )


class ScheduleResponse(BaseModel):
    success: bool = True
    data: ScheduleData


class ScheduleListResponse(BaseModel):
    success: bool = True
    data: list[ScheduleData]


def schedule_data(schedule: Schedule) -> ScheduleData:
    return ScheduleData(
        scheduleId=schedule.schedule_id,
        type=schedule.data_type,
        every=schedule.every.value,
        timezone=schedule.timezone,
        groupBy=schedule.group_by,
        bucket=schedule.bucket,
        format=schedule.format,
        destination=schedule.destination,
        callbackUrl=schedule.callback_url,
        state=schedule.state,
        createdAt=format_instant(schedule.created_ms, schedule.zone),
        publishedThrough=(
            None if schedule.published_through is None else schedule.published_through.isoformat()
        ),
    )


def _message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


class ScheduleRoutes:
    """Handlers of the schedule routes over a schedule store (None: routes only, no use)."""

    def __init__(
        self, schedules: ScheduleStore | None, authorize: Authorize, vetter: CallbackVetter
    ) -> None:
        self._schedules = schedules
        self._authorize = authorize
        self._vetter = vetter

    def add_to(self, router: web.UrlDispatcher, prefix: str) -> None:
        router.add_post(f"{prefix}{SCHEDULES_PATH}", self._create)
        router.add_get(f"{prefix}{SCHEDULES_PATH}", self._list, allow_head=False)
        router.add_get(f"{prefix}{SCHEDULE_PATH}", self._get, allow_head=False)
        router.add_delete(f"{prefix}{SCHEDULE_PATH}", self._delete)
        router.add_post(f"{prefix}{PAUSE_PATH}", self._pause)
        router.add_post(f"{prefix}{RESUME_PATH}", self._resume)

    def _store(self) -> ScheduleStore:
        if self._schedules is None:
            raise RuntimeError("this API has no schedule store")
        return self._schedules

    async def _create(self, request: web.Request) -> web.StreamResponse:
        principal = await self._authorize(request)
        raw = await request.read()
        try:
            parsed: Any = codec.loads(raw) if raw else None
            body = ScheduleBody.model_validate(parsed)
        except codec.JSONDecodeError as exc:
            return error_response(400, f"The body must be JSON: {exc}")
        except ValidationError as exc:
            return error_response(400, _message(exc))
        store = self._store()
        if body.callback_url is not None:
            try:
                await self._vetter.vet(body.callback_url)
            except CallbackRefused as exc:
                return error_response(400, f"callback_url: {exc}")
        try:
            schedule = store.new(
                principal.org_id,
                body.type,
                body.every.value,
                body.timezone,
                group_by=body.group_by,
                bucket=None if body.bucket is None else body.bucket.value,
                export_format=None if body.format is None else body.format.value,
                destination=body.destination,
                callback_url=body.callback_url,
            )
        except ScheduleError as exc:
            return error_response(400, str(exc))
        created = await store.create(schedule)
        return json_response(201, ScheduleResponse(data=schedule_data(created)))

    async def _list(self, request: web.Request) -> web.StreamResponse:
        principal = await self._authorize(request)
        found = await self._store().list_for(principal.org_id)
        return json_response(200, ScheduleListResponse(data=[schedule_data(s) for s in found]))

    def _unknown(self, schedule_id: str) -> web.Response:
        return error_response(
            404, f"No schedule {schedule_id} in this workspace", error="Not Found"
        )

    async def _get(self, request: web.Request) -> web.StreamResponse:
        principal = await self._authorize(request)
        schedule_id = request.match_info["schedule_id"]
        if not is_valid_id(schedule_id):
            return self._unknown(schedule_id)
        schedule = await self._store().get(principal.org_id, schedule_id)
        if schedule is None:
            return self._unknown(schedule_id)
        return json_response(200, ScheduleResponse(data=schedule_data(schedule)))

    async def _delete(self, request: web.Request) -> web.StreamResponse:
        principal = await self._authorize(request)
        schedule_id = request.match_info["schedule_id"]
        try:
            await self._store().delete(principal.org_id, schedule_id)
        except ScheduleError:
            return self._unknown(schedule_id)
        return json_response(200, {"success": True})

    async def _pause(self, request: web.Request) -> web.StreamResponse:
        return await self._change(request, "pause")

    async def _resume(self, request: web.Request) -> web.StreamResponse:
        return await self._change(request, "resume")

    async def _change(self, request: web.Request, verb: str) -> web.StreamResponse:
        principal = await self._authorize(request)
        schedule_id = request.match_info["schedule_id"]
        store = self._store()
        change = store.pause if verb == "pause" else store.resume
        try:
            schedule = await change(principal.org_id, schedule_id)
        except ScheduleError:
            return self._unknown(schedule_id)
        return json_response(200, ScheduleResponse(data=schedule_data(schedule)))
