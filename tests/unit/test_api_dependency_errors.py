"""The API's guard decides from ``retriable``: a dependency away is 503 with Retry-After,
an error that retrying cannot mend (a broker refusing for good) is a 500."""

from __future__ import annotations

import json

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from aiohttp.web_urldispatcher import UrlMappingMatchInfo
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, TopicAuthorizationFailedError

from services.api.handlers import ExportApi
from shared.errors import StoreUnavailable
from shared.settings import Settings


def guard() -> ExportApi:
    return ExportApi(
        Settings(),
        verifier=None,  # type: ignore[arg-type]  # the guard uses none of them
        limiter=None,  # type: ignore[arg-type]
        waiter=None,  # type: ignore[arg-type]
        producer=None,
        exports=None,  # type: ignore[arg-type]
    )


async def answer_when_handler_raises(error: Exception) -> tuple[int, dict[str, str], str]:
    request = make_mocked_request(
        "POST",
        "/export/users",
        match_info=UrlMappingMatchInfo({}, None),  # type: ignore[arg-type]
    )

    async def handler(_: web.Request) -> web.StreamResponse:
        raise error

    response = await guard()._guarded(request, handler)
    assert isinstance(response, web.Response)
    assert response.text is not None
    return response.status, dict(response.headers), json.loads(response.text)["message"]


@pytest.mark.parametrize(
    "error",
    [StoreUnavailable("GET x: 503"), KafkaConnectionError("no broker"), KafkaTimeoutError()],
)
async def test_a_dependency_away_is_503_with_retry_after(error: Exception) -> None:
    status, headers, message = await answer_when_handler_raises(error)
    assert status == 503
    assert headers["Retry-After"] == "10"
    assert "unavailable" in message


@pytest.mark.parametrize("error", [TopicAuthorizationFailedError(), ValueError("bug")])
async def test_an_error_retrying_cannot_mend_is_500(error: Exception) -> None:
    status, headers, message = await answer_when_handler_raises(error)
    assert status == 500
    assert "Retry-After" not in headers
    assert message == "Internal error while answering the request"
