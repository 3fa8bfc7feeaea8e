"""The API's request handling: guard (origin, route, key, rate), export, status.

Every request passes the guard middleware first: a browser ``Origin`` header → 403; an
unknown path or method → 404/405. Each handler then asks for the caller's key: no valid
key → 401; over the key's rate → 429. The export handler then validates the body (400
before anything is published), publishes an export request and waits for its
completion; the status handler answers from the exporter's request records or from
what this process saw.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from services.api.auth import AuthFailure, KeyVerifier, Principal, Throttled
from services.api.idempotency_keys import IdempotencyKeys
from services.api.rate_limit import RateLimiter
from services.api.responses import error_response, export_body, failure_response, json_response
from services.api.routes import EXPORT_ROUTES, STATUS_PATH, ExportRoute, Variant, status_path
from services.api.rows import FileMissing, TooLarge, rows_body
from services.api.schedules import SCHEDULES_PATH, ScheduleRoutes
from services.api.schemas import ExportBody, PendingResponse
from services.api.waiter import CompletionWaiter, RequestKey, TooManyWaiting
from services.api.workspace_slots import WorkspaceSlots
from services.scheduler.store import ScheduleStore
from shared import codec
from shared.adapters.callback_vetting import CallbackRefused, CallbackVetter
from shared.adapters.object_store import ObjectStore
from shared.adapters.request_ledger import RequestLedger
from shared.adapters.signed_completions import completion_of
from shared.clock import Clock, system_clock
from shared.contracts.completions import ExportCompletion
from shared.contracts.export_formats import ExportFormat
from shared.contracts.ids import ID_RULE, is_valid_id
from shared.domain.export.request_validation import ReadableRequest, Rejected, validate_request
from shared.errors import RetriableError
from shared.lru import LruMap
from shared.observability import ApiMetrics
from shared.retry import is_retriable
from shared.settings import Settings

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_PENDING_RETRY_AFTER_S = "5"
_BUSY_WORKSPACE_RETRY_AFTER_S = "5"
_ACCEPTED_MEMORY = 10_000


class BadRequest(Exception):
    """The request cannot be answered as sent; the message says what to fix."""


class Refused(Exception):
    """The request is refused before any work (401, 429): answer ``response``."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def _validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"'{where}': {first['msg']}"


class ExportApi:
    """Handlers and middleware of the HTTP API, over injected clients."""

    def __init__(
        self,
        settings: Settings,
        *,
        verifier: KeyVerifier,
        limiter: RateLimiter,
        waiter: CompletionWaiter,
        producer: AIOKafkaProducer,
        exports: ObjectStore,
        metrics: ApiMetrics | None = None,
        clock: Clock = system_clock,
        vetter: CallbackVetter | None = None,
        schedules: ScheduleStore | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._vetter = vetter or CallbackVetter.of(settings)
        self._schedule_routes = ScheduleRoutes(schedules, self._authorized, self._vetter)
        self._verifier = verifier
        self._limiter = limiter
        self._waiter = waiter
        self._producer = producer
        self._exports = exports
        self._ledger = RequestLedger(exports)
        self._idempotency_keys = IdempotencyKeys(exports)
        self._slots = WorkspaceSlots(settings.api_max_exports_per_workspace)
        self._metrics = metrics
        self._accepted: LruMap[RequestKey, None] = LruMap(_ACCEPTED_MEMORY)

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=64 * 1024)
        prefixes = [""] + (
            [self._settings.api_path_prefix] if self._settings.api_path_prefix else []
        )
        for prefix in prefixes:
            for route in EXPORT_ROUTES:
                app.router.add_post(f"{prefix}{route.path}", self._export_handler(route))
            app.router.add_get(f"{prefix}{STATUS_PATH}", self._status, allow_head=False)
            self._schedule_routes.add_to(app.router, prefix)
        return app

    # ---- guard ------------------------------------------------------------------------
    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.monotonic()
        label = self._route_label(request)
        response = await self._guarded(request, handler)
        if self._metrics is not None:
            self._metrics.observe(label, response.status, time.monotonic() - started)
            self._metrics.waiting.set(self._waiter.waiting_count)
        return response

    async def _guarded(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if "Origin" in request.headers:
            return error_response(
                403,
                "Browser requests are not allowed: call this API from a server, never from "
                "a web page, so that your API key stays secret",
            )
        matched = request.match_info.http_exception
        if matched is not None:
            # RFC 9110 §15.5.6: a 405 names the methods the resource allows.
            allowed = getattr(matched, "allowed_methods", None)
            return error_response(
                matched.status,
                f"{request.method} {request.path}: {matched.reason}",
                headers={"Allow": ", ".join(sorted(allowed))} if allowed else None,
            )
        try:
            return await handler(request)
        except Refused as exc:
            return exc.response
        except BadRequest as exc:
            return error_response(400, str(exc))
        except web.HTTPException as exc:  # aiohttp's own refusals, e.g. a body over 64 KiB
            return error_response(exc.status, exc.reason)
        except Exception as exc:
            if is_retriable(exc):  # the store or broker is away, or too many are waiting
                log.warning("%s %s: dependency unavailable: %s", request.method, request.path, exc)
                return error_response(
                    503,
                    "The export service is unavailable right now; retry later",
                    headers={"Retry-After": "10"},
                )
            log.exception("%s %s failed", request.method, request.path)
            return error_response(500, "Internal error while answering the request")

    async def _authorized(self, request: web.Request) -> Principal:
        """The caller's key, within its rate; else raises :class:`Refused` (401, 429)."""
        outcome = await self._verifier.verify(request.headers.get("Authorization"), request.remote)
        if isinstance(outcome, Throttled):
            if self._metrics is not None:
                self._metrics.auth_failures.labels(reason="throttled").inc()
            raise Refused(
                error_response(
                    429,
                    outcome.message,
                    error="Too Many Requests",
                    headers={"Retry-After": str(outcome.retry_after_s)},
                )
            )
        if isinstance(outcome, AuthFailure):
            if self._metrics is not None:
                self._metrics.auth_failures.labels(reason=outcome.reason).inc()
            raise Refused(
                error_response(401, outcome.value, headers={"WWW-Authenticate": "Bearer"})
            )
        wait_s = self._limiter.acquire(outcome.key_id)
        if wait_s is not None:
            raise Refused(
                error_response(
                    429,
                    f"Rate limit of {self._settings.api_rate_limit_per_min} requests per minute "
                    f"for this API key exceeded: retry in {wait_s} s",
                    error="Too Many Requests",
                    headers={"Retry-After": str(wait_s)},
                )
            )
        return outcome

    @staticmethod
    def _route_label(request: web.Request) -> str:
        info = request.match_info.route.resource
        path = info.canonical if info is not None else ""
        if path.endswith(STATUS_PATH):
            return "status"
        if SCHEDULES_PATH in path:
            return "schedules"
        for route in EXPORT_ROUTES:
            if path.endswith(route.path):
                return route.data_type.value
        return "other"

    # ---- POST /export/{type} ------------------------------------------------------------
    def _export_handler(self, route: ExportRoute) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._export(request, route)

        return handle

    async def _export(self, request: web.Request, route: ExportRoute) -> web.StreamResponse:
        principal = await self._authorized(request)
        body = await self._read_body(request)
        if route.variant is Variant.JSON and body.format not in (None, ExportFormat.CSV):
            raise BadRequest(
                f"format {body.format.value!r} is for file exports: this variant answers the "
                "rows inline; use the file endpoint, or no format"
            )
        idempotency_key = request.headers.get("Idempotency-Key")
        if idempotency_key is not None and not is_valid_id(idempotency_key):
            raise BadRequest(f"Idempotency-Key must be {ID_RULE}")
        request_id = idempotency_key or str(uuid.uuid4())
        payload = self._request_message(principal, route, body, request_id)
        checked = validate_request(
            ReadableRequest(request_id, principal.org_id, payload), now=self._clock()
        )
        if isinstance(checked, Rejected):
            raise BadRequest(checked.message)
        if checked.callback_url is not None:
            # Refused here with 400, before anything is published (the exporter vets it
            # again, as it does for requests that come straight from Kafka).
            try:
                await self._vetter.vet(checked.callback_url)
            except CallbackRefused as exc:
                raise BadRequest(str(exc)) from None
        if not self._slots.enter(principal.org_id):
            raise Refused(
                error_response(
                    429,
                    f"This workspace already has {self._slots.limit} export requests in "
                    f"progress: retry in {_BUSY_WORKSPACE_RETRY_AFTER_S} s",
                    error="Too Many Requests",
                    headers={"Retry-After": _BUSY_WORKSPACE_RETRY_AFTER_S},
                )
            )
        try:
            if idempotency_key is not None:
                await self._check_first_use(principal.org_id, idempotency_key, payload)
            # A repeated request id is published again too: the exporter answers it from
            # its record (same file, a freshly signed URL, re-exported if it was deleted).
            completion = await self._publish_and_wait((principal.org_id, request_id), payload)
        finally:
            self._slots.leave(principal.org_id)
        if completion is None:
            return self._pending(request, request_id)
        return await self._answer(completion, route.variant)

    async def _check_first_use(
        self, org_id: str, idempotency_key: str, payload: dict[str, Any]
    ) -> None:
        """Raises :class:`Refused` (409) when the key was first used for another request."""
        earlier = await self._idempotency_keys.claim(org_id, idempotency_key, payload)
        if earlier is not None:
            raise Refused(
                error_response(
                    409,
                    f"Idempotency-Key {idempotency_key} was already used for a different "
                    f"request ({earlier}); send a new Idempotency-Key for a new request",
                )
            )

    async def _read_body(self, request: web.Request) -> ExportBody:
        raw = await request.read()
        try:
            parsed = codec.loads(raw) if raw else None
        except codec.JSONDecodeError as exc:
            raise BadRequest(f"The body must be JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise BadRequest(
                'The body must be a JSON object like {"from": {"date": "2024-01-01", '
                '"timezone": "UTC"}, "to": {"date": "2024-01-31", "timezone": "UTC"}}'
            )
        try:
            return ExportBody.model_validate(parsed)
        except ValidationError as exc:
            raise BadRequest(_validation_message(exc)) from None

    @staticmethod
    def _request_message(
        principal: Principal, route: ExportRoute, body: ExportBody, request_id: str
    ) -> dict[str, Any]:
        """The contract §3 message; the workspace is the key's, never the caller's say."""
        message = {
            "request_id": request_id,
            "org_id": principal.org_id,
            "data_type": route.data_type.value,
            "from": body.from_.model_dump(),
            "to": body.to.model_dump(),
            "group_by": body.group_by,
            "requested_by": f"api-key:{principal.key_id}",
        }
        if body.format is not None:
            message["format"] = body.format.value
        if body.bucket is not None:
            message["bucket"] = body.bucket.value
        if body.callback_url is not None:
            message["callback_url"] = body.callback_url
        if body.destination is not None:
            message["destination"] = body.destination
        return message

    async def _publish_and_wait(
        self, key: RequestKey, payload: dict[str, Any]
    ) -> ExportCompletion | None:
        """The completion, or None when it did not come within ``api_timeout_s``."""
        try:
            async with self._waiter.waiting(key) as future:
                await self._producer.send_and_wait(
                    self._settings.topic_export_requests,
                    key=key[0].encode(),
                    value=codec.dumps(payload),
                )
                self._remember_accepted(key)
                try:
                    return await asyncio.wait_for(
                        asyncio.shield(future), self._settings.api_timeout_s
                    )
                except TimeoutError:
                    if self._metrics is not None:
                        self._metrics.pending_answers.inc()
                    return None
        except TooManyWaiting as exc:
            raise RetriableError(str(exc)) from exc

    def _remember_accepted(self, key: RequestKey) -> None:
        self._accepted.put(key, None)

    def _pending(self, request: web.Request, request_id: str) -> web.Response:
        prefix = self._settings.api_path_prefix
        used = prefix if prefix and request.path.startswith(f"{prefix}/") else ""
        url = status_path(request_id, used)
        body = PendingResponse(
            error="Export pending",
            message=f"The export is still running. GET {url} with the same API key for its "
            f"outcome, or repeat this request with the header 'Idempotency-Key: {request_id}'.",
            requestId=request_id,
            statusUrl=url,
        )
        return json_response(202, body, {"Location": url, "Retry-After": _PENDING_RETRY_AFTER_S})

    async def _answer(self, completion: ExportCompletion, variant: Variant) -> web.Response:
        data = completion.data
        if not completion.success or data is None:
            return failure_response(completion)
        if variant is not Variant.JSON:
            return json_response(200, export_body(data))
        try:
            rows = await rows_body(
                data,
                self._exports,
                max_rows=self._settings.api_json_max_rows,
                max_bytes=self._settings.api_json_max_bytes,
            )
        except TooLarge as exc:
            return error_response(413, str(exc))
        except FileMissing as exc:
            return error_response(404, str(exc), error="Not Found")
        return json_response(200, rows)

    # ---- GET /export/requests/{request_id} ------------------------------------------------
    async def _status(self, request: web.Request) -> web.StreamResponse:
        principal = await self._authorized(request)
        request_id = request.match_info["request_id"]
        if not is_valid_id(request_id):
            raise BadRequest(f"request id must be {ID_RULE}")
        key = (principal.org_id, request_id)
        # The exporter's record first: any replica can answer, with a freshly signed URL.
        record = await self._ledger.peek(*key)
        if record is not None and record.outcome is not None and record.outcome.final:
            recorded = await completion_of(
                record.outcome,
                request_id=request_id,
                org_id=principal.org_id,
                exports=self._exports,
                ttl_s=self._settings.signed_url_ttl_s,
                now=self._clock(),
            )
            return await self._answer(recorded, Variant.FILE)
        seen = self._waiter.recent(key)  # e.g. a 500/503, which the exporter does not record
        if seen is not None:
            return await self._answer(seen, Variant.FILE)
        known = self._waiter.is_waiting(key) or key in self._accepted or record is not None
        if known:
            return self._pending(request, request_id)
        return error_response(
            404, f"No export request {request_id} in this workspace", error="Not Found"
        )
