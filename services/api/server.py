"""The API's HTTP server: aiohttp's, with answers and limits of our own below the app.

What reaches no middleware is handled here:

* a request aiohttp's parser refuses (a folded header, bare-LF lines, a NUL, an
  encoding it cannot decode) is answered with the API's JSON error body, never an echo
  of the request: the parser's message quotes the offending line, which may hold the
  caller's key. It is logged in one line without traceback or the parser's message;
* slow clients: a connection must send a whole request head within
  ``api_header_timeout_s`` of opening or of its previous answer, else it is closed
  (aiohttp's keep-alive timer, which also runs while no request has come);
* connections: beyond ``api_max_connections`` open at once a new connection is answered
  503 and closed at once (as uvicorn's ``--limit-concurrency`` does).

aiohttp has no hook for parser errors (aio-libs/aiohttp#3287): they are answered by
``RequestHandler.handle_error``, so :class:`ApiRequestHandler` overrides it, and
:class:`ApiRunner` serves the application with a :class:`ApiServer` that makes those
handlers. The integration tests (tests/integration/test_api_http_hardening.py) pin
the behaviour against the installed aiohttp.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError, HttpProcessingError

from services.api.responses import error_response
from services.api.schemas import ErrorResponse
from shared import codec
from shared.settings import Settings

log = logging.getLogger(__name__)

#: Content codings the API decodes (aiohttp does it); anything else is answered 415.
ACCEPTED_ENCODINGS = ("gzip", "deflate")
ACCEPT_ENCODING = ", ".join(ACCEPTED_ENCODINGS)
# After an answer that leaves a body unread (408, 413), aiohttp reads and drops the rest
# for this long so the client sees the answer; 64 KiB bodies need no more.
_LINGERING_S = 2.0
#: What the client sent that aiohttp refused: its fault, answered 4xx, never an ERROR.
CLIENT_FAULTS: tuple[type[BaseException], ...] = (
    HttpProcessingError,
    web.RequestPayloadError,
    ConnectionError,
)


def _parser_refusal(exc: BaseException | None, status: int) -> tuple[int, str, dict[str, str]]:
    """Status, message and headers for a request aiohttp refused (never its message)."""
    if isinstance(exc, ContentEncodingError):  # br, zstd: no decoder installed
        return (
            415,
            f"Content-Encoding not accepted: send the body uncompressed or as {ACCEPT_ENCODING}",
            {"Accept-Encoding": ACCEPT_ENCODING},
        )
    if isinstance(exc, HttpProcessingError):
        code = exc.code if 400 <= exc.code < 500 else 400
        return (
            code,
            "The request is not valid HTTP/1.1 (request line, header names and values, "
            "line endings): fix the client or its proxy",
            {},
        )
    if status == 504:
        return status, "The request took too long to answer", {}
    return 500, "Internal error while answering the request", {}


def _over_capacity_answer() -> bytes:
    body = codec.dumps(
        ErrorResponse(
            error="Service Unavailable",
            message="Too many connections to this server: retry later",
        ).model_dump(mode="json")
    )
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Retry-After: 5\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


class ApiRequestHandler(web.RequestHandler):
    """One connection: aiohttp's, with JSON refusals, quiet client faults and a cap."""

    def __init__(self, manager: ApiServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._api_server = manager
        self._refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._api_server.admit():
            self._refused = True
            stream = cast(asyncio.Transport, transport)
            stream.write(_over_capacity_answer())
            stream.close()  # after the answer is written; nothing of it is read
            return
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self._refused:
            super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._refused:
            return  # never started: nothing to clean up
        self._api_server.release()
        super().connection_lost(exc)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The API's error body for what aiohttp answers itself (parser errors, 500, 504)."""
        status, text, headers = _parser_refusal(exc, status)
        if status >= 500:
            log.error("error answering a request from %s", request.remote, exc_info=exc)
        else:
            log.info(
                "refused a malformed request from %s with %d: %s",
                request.remote,
                status,
                type(exc).__name__,
            )
        if request.writer.output_size > 0:  # as aiohttp: an answer has begun already
            raise ConnectionError("an answer was being sent: cannot send another one")
        response = error_response(status, text, headers=headers)
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """aiohttp's own error log: a client's fault in one line, without traceback
        (a body that does not decode fails again when aiohttp drains it)."""
        exc = kw.get("exc_info")
        if isinstance(exc, CLIENT_FAULTS):
            log.debug("connection closed on a client error: %s", type(exc).__name__)
            return
        super().log_exception(*args, **kw)


class ApiServer(web.Server):
    """aiohttp's low-level server making :class:`ApiRequestHandler` connections, at most
    ``max_connections`` at once."""

    def __init__(self, handler: Any, *, max_connections: int, **kwargs: Any) -> None:
        self._handler_kwargs = {
            key: value
            for key, value in kwargs.items()
            if key not in ("request_factory", "handler_cancellation", "loop")
        }
        super().__init__(handler, **kwargs)
        self._max_connections = max_connections
        self._open = 0
        self._refusing = False

    def __call__(self) -> ApiRequestHandler:
        return ApiRequestHandler(self, loop=asyncio.get_running_loop(), **self._handler_kwargs)

    def admit(self) -> bool:
        """Whether a new connection may be served; counts it if so."""
        if self._open >= self._max_connections:
            if not self._refusing:  # once per episode, not once per connection
                log.warning(
                    "%d connections open: new ones are answered 503 until some close",
                    self._open,
                )
            self._refusing = True
            return False
        self._open += 1
        self._refusing = False
        return True

    def release(self) -> None:
        self._open -= 1


class ApiRunner(web.AppRunner):
    """``web.AppRunner`` serving the app through :class:`ApiServer`, with the
    settings' slow-client and connection bounds."""

    def __init__(self, app: web.Application, settings: Settings) -> None:
        super().__init__(
            app,
            access_log=None,
            handle_signals=False,
        )
        self._header_timeout_s = settings.api_header_timeout_s
        self._max_connections = settings.api_max_connections

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # starts and freezes the app
        return ApiServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            max_connections=self._max_connections,
            access_log=None,
            # Armed when a connection opens and after each answer, it closes a connection
            # still without a whole request head: the bound on slow request heads.
            keepalive_timeout=self._header_timeout_s,
            lingering_time=_LINGERING_S,
        )
