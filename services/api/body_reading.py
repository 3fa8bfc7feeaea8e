"""The request body, read before the handler runs: accepted encodings, a time bound,
and the client's faults answered 4xx without a traceback.

A middleware inside the API's guard (services/api/handlers.py): the handler's own
``request.read()`` then returns the body read here.

* ``Content-Encoding`` other than ``identity``, ``gzip`` or ``deflate`` (one coding) →
  415 with ``Accept-Encoding``; aiohttp decodes gzip and deflate;
* a body that does not decode, or whose chunked framing is broken → 400;
* a body not whole within ``api_body_timeout_s`` → 408, connection closed;
* a client that disconnects mid-body → 499 (nginx's "client closed request": nobody
  receives it, the metrics count it), logged at DEBUG.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError
from aiohttp.typedefs import Middleware

from services.api.responses import error_response
from services.api.server import ACCEPT_ENCODING, ACCEPTED_ENCODINGS

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CLIENT_CLOSED = 499


def content_codings(request: web.BaseRequest) -> list[str]:
    """The codings of ``Content-Encoding`` (all its headers), lower case, in order."""
    return [
        coding.strip().lower()
        for value in request.headers.getall("Content-Encoding", [])
        for coding in value.split(",")
        if coding.strip()
    ]


def _unaccepted_encoding(request: web.BaseRequest) -> web.Response | None:
    codings = content_codings(request)
    if not codings or codings == ["identity"]:
        return None
    if len(codings) == 1 and codings[0] in ACCEPTED_ENCODINGS:
        return None
    response = error_response(
        415,
        f"Content-Encoding not accepted: send the body uncompressed or as {ACCEPT_ENCODING} "
        "(one coding)",
        headers={"Accept-Encoding": ACCEPT_ENCODING},
    )
    response.force_close()  # the body stays unread
    return response


async def _read_body(request: web.BaseRequest, timeout_s: float) -> web.Response | None:
    """Reads the body (kept by aiohttp for the handler); an answer if it cannot be read."""
    try:
        async with asyncio.timeout(timeout_s):
            await request.read()
    except TimeoutError:
        log.info("%s %s: body not received within %g s", request.method, request.path, timeout_s)
        response = error_response(
            408, f"The request body did not arrive within {timeout_s:g} s: send it at once"
        )
        response.force_close()
        return response
    except web.RequestPayloadError as exc:
        if isinstance(exc.__cause__, ContentEncodingError):
            coding = ", ".join(content_codings(request))
            message = f"The body is not valid {coding} data (Content-Encoding: {coding})"
        else:
            message = "The body could not be read as sent (its length or chunked framing)"
        log.info("%s %s: unreadable body: %s", request.method, request.path, message)
        response = error_response(400, message)
        response.force_close()
        return response
    except ConnectionError:
        log.debug("%s %s: the client left before its body ended", request.method, request.path)
        return error_response(
            CLIENT_CLOSED, "The client closed the connection", error="Client Closed Request"
        )
    return None


def body_reader(timeout_s: float) -> Middleware:
    """The middleware: refuses unaccepted encodings, reads the body within ``timeout_s``."""

    @web.middleware
    async def read_body_first(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.body_exists:
            refusal = _unaccepted_encoding(request) or await _read_body(request, timeout_s)
            if refusal is not None:
                return refusal
        return await handler(request)

    return read_body_first
