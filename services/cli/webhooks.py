"""``usage-export webhooks secret --org ORG``: create or rotate a workspace's webhook
signing secret, printed alone on the last line, once (it is stored under
``webhook-secrets/`` in the aggregates bucket: ``shared.adapters.webhook_secrets``)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from shared.adapters.s3 import S3ObjectStore
from shared.adapters.webhook_secrets import WebhookSecrets
from shared.clock import system_clock
from shared.contracts.ids import ID_RULE, is_valid_id
from shared.settings import load_settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "webhooks",
        help="webhook signing secrets of a workspace",
        description="Deliveries to a request's callback_url are signed with the workspace's "
        "secret (Usage-Export-Signature, docs/contract.md §4a). `secret` creates it, or "
        "rotates it: the previous secret keeps signing too for USAGE_WEBHOOK_SECRET_OVERLAP_S "
        "(default 24 h).",
    )
    actions = parser.add_subparsers(dest="webhooks_action", metavar="ACTION", required=True)
    secret = actions.add_parser(
        "secret", help="create or rotate the secret; prints it alone on the last line"
    )
    secret.add_argument("--org", required=True, help="workspace id")
    secret.set_defaults(func=_secret)


def _secret(args: argparse.Namespace) -> int:
    if not is_valid_id(args.org):
        print(f"usage-export webhooks: --org must be {ID_RULE}", file=sys.stderr)
        return 2
    settings = load_settings()

    async def run() -> str:
        async with S3ObjectStore(settings, settings.aggregates_bucket) as store:
            secrets = WebhookSecrets(store, overlap_s=settings.webhook_secret_overlap_s)
            return await secrets.rotate(args.org, system_clock())

    secret = asyncio.run(run())
    overlap_h = settings.webhook_secret_overlap_s / 3600
    print(
        f"new webhook signing secret for workspace {args.org}; a previous one, if any, "
        f"signs too for {overlap_h:g} h"
    )
    print("store it now: it is not shown again")
    print(secret)
    return 0
