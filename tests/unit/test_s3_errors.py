"""What S3ObjectStore raises for each kind of backend failure: only the project's errors
(issue 14, item 2), whichever call failed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ParamValidationError

from shared.adapters.s3 import S3ObjectStore
from shared.errors import (
    PreconditionFailed,
    StoreRefused,
    StoreUnavailable,
    UploadNotFound,
    UsageExportError,
)
from shared.settings import Settings


def client_error(status: int, code: str, operation: str = "Op") -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": f"{code} here"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, operation)


class FailingClient:
    """Every S3 call raises ``error`` and is counted."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            raise self.error

        return call


def store_failing_with(error: Exception) -> tuple[S3ObjectStore, FailingClient]:
    settings = Settings(s3_max_attempts=3, s3_retry_base_s=0.001, s3_retry_max_s=0.001)
    store = S3ObjectStore(settings, "bucket")
    client = FailingClient(error)
    store._client = client  # type: ignore[assignment]  # the started client, faked
    return store, client


def every_call(store: S3ObjectStore) -> dict[str, Callable[[], Awaitable[object]]]:
    return {
        "get": lambda: store.get("k"),
        "head": lambda: store.head("k"),
        "put": lambda: store.put("k", b"{}"),
        "conditional put": lambda: store.put("k", b"{}", if_match='"1"'),
        "put_with_metadata": lambda: store.put_with_metadata(
            "k", b"", content_type="text/csv", metadata={}
        ),
        "delete": lambda: store.delete("k"),
        "list_objects": lambda: store.list_objects("p/"),
        "list_prefixes": lambda: store.list_prefixes("p/"),
        "presign_download": lambda: store.presign_download("k", 60),
        "create_multipart_upload": lambda: store.create_multipart_upload(
            "k", content_type="text/csv", metadata={}
        ),
        "upload_part": lambda: store.upload_part("k", "u", 1, b"x"),
        "complete_multipart_upload": lambda: store.complete_multipart_upload("k", "u", [(1, "e")]),
        "abort_multipart_upload": lambda: store.abort_multipart_upload("k", "u"),
        "check_bucket": store.check_bucket,
    }


CALLS = list(every_call(S3ObjectStore(Settings(), "bucket")))


@pytest.mark.parametrize("call", CALLS)
async def test_a_refusal_is_store_refused_at_once(call: str) -> None:
    store, client = store_failing_with(client_error(403, "AccessDenied"))
    with pytest.raises(StoreRefused) as refused:
        await every_call(store)[call]()
    assert (refused.value.status, refused.value.code) == (403, "AccessDenied")
    assert client.calls == 1


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize(
    "error",
    [
        client_error(503, "SlowDown"),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        aiohttp.ServerDisconnectedError(),
        ConnectionResetError("reset"),
        TimeoutError(),
    ],
    ids=["503", "botocore-connection", "aiohttp", "oserror", "timeout"],
)
async def test_a_transient_failure_is_store_unavailable_after_the_attempts(
    call: str, error: Exception
) -> None:
    store, client = store_failing_with(error)
    if call == "presign_download":  # signed locally: no request, nothing transient
        return
    with pytest.raises(StoreUnavailable):
        await every_call(store)[call]()
    assert client.calls == (1 if call == "check_bucket" else 3)  # readiness: one try


@pytest.mark.parametrize("call", CALLS)
async def test_a_bad_parameter_is_a_project_error(call: str) -> None:
    store, _ = store_failing_with(ParamValidationError(report="Key: too long"))
    with pytest.raises(UsageExportError):
        await every_call(store)[call]()


async def test_what_is_not_an_error_is_an_answer() -> None:
    store, _ = store_failing_with(client_error(404, "NoSuchKey"))
    assert await store.get("k") is None
    assert await store.head("k") is None
    store, _ = store_failing_with(client_error(404, "404"))  # HEAD's answer has no body
    assert await store.head("k") is None
    store, _ = store_failing_with(client_error(404, "NoSuchUpload"))
    await store.abort_multipart_upload("k", "u")
    with pytest.raises(UploadNotFound):
        await store.complete_multipart_upload("k", "u", [(1, "e")])


@pytest.mark.parametrize("status_code", [(412, "PreconditionFailed"), (409, "Conflict")])
async def test_a_lost_race_is_precondition_failed(status_code: tuple[int, str]) -> None:
    store, client = store_failing_with(client_error(*status_code))
    with pytest.raises(PreconditionFailed):
        await store.put("k", b"{}", if_none_match=True)
    assert client.calls == 1


async def test_an_if_match_put_on_a_deleted_key_is_a_lost_race() -> None:
    # AWS answers 404 where SeaweedFS and MinIO answer 412: the version read is gone.
    store, client = store_failing_with(client_error(404, "NoSuchKey"))
    with pytest.raises(PreconditionFailed):
        await store.put("k", b"{}", if_match='"etag"')
    assert client.calls == 1
