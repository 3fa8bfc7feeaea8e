"""Helpers of the HTTP API's integration tests: run the API in this process, call it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from services.api.app import ApiServing, serving_api
from services.api.keys import KeyStore, pepper_of
from shared import codec
from shared.adapters.s3 import S3ObjectStore
from shared.settings import Settings

FREE_PORTS = {"api_port": 0, "api_metrics_port": 0}


@contextlib.asynccontextmanager
async def running_api(settings: Settings) -> AsyncIterator[ApiServing]:
    """The API on free loopback ports until the block ends."""
    async with serving_api(settings.model_copy(update=FREE_PORTS)) as serving:
        yield serving


async def create_key(settings: Settings, org_id: str, **options: Any) -> str:
    async with S3ObjectStore(settings, settings.aggregates_bucket) as store:
        key, _ = await KeyStore(store, pepper=pepper_of(settings)).create(org_id, **options)
        return key


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


async def call(
    url: str,
    *,
    method: str = "POST",
    key: str | None = None,
    body: Any = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One HTTP call; the body is parsed as JSON."""
    sent = dict(headers or {})
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    data = raw if raw is not None else (codec.dumps(body) if body is not None else None)
    if data is not None:
        sent.setdefault("Content-Type", "application/json")
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, data=data, headers=sent) as response,
    ):
        text = await response.read()
        return Answer(response.status, codec.loads(text) if text else None, dict(response.headers))


def window(from_date: str, to_date: str, timezone: str = "UTC", **extra: Any) -> dict[str, Any]:
    return {
        "from": {"date": from_date, "timezone": timezone},
        "to": {"date": to_date, "timezone": timezone},
        **extra,
    }
