"""A short-lived S3 client for probing and provisioning the store (not for the services).

Retries are off on purpose: the callers loop with their own deadline and want to see
each failure, and a probe against a store still booting must fail fast.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import aioboto3
from aiobotocore.config import AioConfig

from shared.adapters.s3 import plain
from shared.settings import Settings

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client


@contextlib.asynccontextmanager
async def open_s3_client(settings: Settings, *, timeout_s: float = 5.0) -> AsyncIterator[S3Client]:
    """An S3 client for ``settings``' endpoint and keys (unset: the default chain), closed
    on exit."""
    config = AioConfig(
        retries={"max_attempts": 1, "mode": "standard"},
        connect_timeout=timeout_s,
        read_timeout=timeout_s,
        s3={"addressing_style": "path"},
        signature_version="s3v4",
    )
    session = aioboto3.Session()
    async with session.client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        region_name=settings.s3_region,
        config=config,
        aws_access_key_id=plain(settings.s3_access_key),
        aws_secret_access_key=plain(settings.s3_secret_key),
    ) as client:
        yield client
