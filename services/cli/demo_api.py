"""The demo's call through the HTTP API: a key, one ``POST /export/users``, its answer.

Runs the API on free loopback ports next to the demo's ingest and exporter, creates an
API key for one workspace and calls the API as a client of the reference docs would.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import aiohttp
from rich.console import Console

from services.api.app import serving_api
from services.api.keys import KeyStore, pepper_of
from shared.adapters.s3 import S3ObjectStore
from shared.settings import Settings


async def api_round_trip(
    settings: Settings, org_id: str, start: date, end: date, console: Console
) -> bool:
    """True when the API answered 200 with an export of ``org_id``'s users."""
    local = settings.model_copy(update={"api_port": 0, "api_metrics_port": 0})
    async with serving_api(local) as serving:
        url = f"{serving.api_url}/export/users"
        async with S3ObjectStore(local, local.aggregates_bucket) as store:
            keys = KeyStore(store, pepper=pepper_of(local))
            key, record = await keys.create(org_id, name="usage-export demo")
        body = {
            "from": {"date": start.isoformat(), "timezone": "UTC"},
            "to": {"date": end.isoformat(), "timezone": "UTC"},
        }
        status, answer = await _post(url, key, body)
    for line in summary_lines(url, status, answer, key_id=record.key_id, org_id=org_id):
        console.print(line, soft_wrap=True)
    return status == 200


def summary_lines(
    url: str, status: int, answer: dict[str, Any], *, key_id: str, org_id: str
) -> list[str]:
    """The call in short lines that read on an 80-column terminal (a long line wrapped in
    the middle of the key id): the call and its outcome, then whose key it used."""
    rows = answer.get("data", {}).get("recordCount") if status == 200 else None
    outcome = f"{rows:,} rows" if rows is not None else f"{answer}"
    return [f"HTTP API: POST {url} → {status}, {outcome}", f"  with API key {key_id} of {org_id}"]


async def _post(url: str, key: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=body, headers=headers) as response,
    ):
        answer: dict[str, Any] = await response.json()
        return response.status, answer
