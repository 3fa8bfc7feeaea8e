"""The demo's webhook: a receiver on a loopback port, a workspace secret, one export
asked with ``callback_url``, and the signed POST checked as a receiver would check it.

The embedded stack allows http and loopback callbacks (``USAGE_WEBHOOK_ALLOW_HTTP``,
``USAGE_WEBHOOK_ALLOW_PRIVATE``); a production deployment refuses both.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import date

from aiohttp import web
from rich.console import Console

from shared.adapters.export_client import ExportClient, export_request
from shared.adapters.s3 import S3ObjectStore
from shared.adapters.webhook_secrets import WebhookSecrets
from shared.clock import Clock
from shared.domain.webhooks.signature import REQUEST_ID_HEADER, SIGNATURE_HEADER, verify
from shared.settings import Settings

_DELIVERY_WAIT_S = 60.0


@dataclass(frozen=True)
class Received:
    request_id: str
    verified: bool
    success: bool


async def webhook_round_trip(
    settings: Settings, org_id: str, start: date, end: date, console: Console, clock: Clock
) -> bool:
    """True when the export's completion reached the receiver, signed with the secret
    the workspace was given."""
    received: asyncio.Queue[Received] = asyncio.Queue()
    async with S3ObjectStore(settings, settings.aggregates_bucket) as store:
        secret = await WebhookSecrets(store, overlap_s=settings.webhook_secret_overlap_s).rotate(
            org_id, clock()
        )

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        verified = verify(
            request.headers.get(SIGNATURE_HEADER, ""), body, secret, int(clock().timestamp())
        )
        completion = json.loads(body)
        await received.put(
            Received(request.headers.get(REQUEST_ID_HEADER, ""), verified, completion["success"])
        )
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        url = f"http://127.0.0.1:{port}/hook"
        message = export_request(
            org_id,
            "models",
            start.isoformat(),
            end.isoformat(),
            requested_by="usage-export-demo",
            callback_url=url,
        )
        async with ExportClient(settings) as client:
            completion = await client.request(message)
        try:
            got = await asyncio.wait_for(received.get(), _DELIVERY_WAIT_S)
        except TimeoutError:
            console.print(f"webhook: nothing reached {url} in {_DELIVERY_WAIT_S:.0f} s")
            return False
    finally:
        await runner.cleanup()
    ok = got.verified and got.request_id == completion.request_id and got.success
    console.print(
        f"webhook: POST {url} ← completion of request {got.request_id[:8]}…, "
        f"signature {'verified' if got.verified else 'NOT verified'} with {org_id}'s secret"
    )
    return ok
