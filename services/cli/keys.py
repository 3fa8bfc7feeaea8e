"""``usage-export keys create|list|revoke --org ORG``: API keys of the HTTP API.

``create`` prints the new key alone on its last line (contract §7), the only time it is
ever shown; ``list`` shows ids, names, scopes and dates, never a secret or a hash.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from services.api.keys import (
    HASH_SCHEME,
    KEY_ID_RULE,
    USAGE_EXPORT_SCOPE,
    ApiKeyError,
    ApiKeyRecord,
    KeyStore,
    is_key_id,
    pepper_of,
)
from shared.adapters.s3 import S3ObjectStore
from shared.settings import load_settings

T = TypeVar("T")


def register(subparsers: Any) -> None:
    # One add_argument per option, spelled out: the shapes repeat across commands by design.
    parser = subparsers.add_parser(
        "keys",
        help="create, list and revoke API keys of the HTTP API",
        description="API keys are scoped to one workspace and stored as HMAC-SHA-256 hashes "
        "(keyed by USAGE_API_KEY_PEPPER, or one derived from USAGE_S3_SECRET_KEY when it is "
        "unset: create keys with the API's settings) under api-keys/ in the aggregates "
        "bucket. A revoked key is refused within USAGE_API_KEY_CACHE_TTL_S seconds "
        "(default 30).",
    )
    actions = parser.add_subparsers(dest="keys_action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a key; prints it alone on the last line")
    create.add_argument("--org", required=True, help="workspace id the key may export")
    create.add_argument("--name", default="", help="a label to recognise the key by")
    create.add_argument(
        "--scope",
        action="append",
        dest="scopes",
        default=None,
        help=f"scope granted (repeatable; default {USAGE_EXPORT_SCOPE})",
    )
    create.set_defaults(func=_create)
    listing = actions.add_parser("list", help="list a workspace's keys (no secrets)")
    listing.add_argument("--org", required=True)
    listing.set_defaults(func=_list)
    revoke = actions.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("--org", required=True)
    revoke.add_argument("key_id", metavar="KEY_ID", help="the id shown by create and list")
    revoke.set_defaults(func=_revoke)


def _with_keys(call: Callable[[KeyStore], Awaitable[T]]) -> T:
    """``call``'s result, given the key store the API's settings name."""
    settings = load_settings()

    async def run() -> T:
        async with S3ObjectStore(settings, settings.aggregates_bucket) as store:
            return await call(KeyStore(store, pepper=pepper_of(settings)))

    return asyncio.run(run())


def _refused(exc: ApiKeyError) -> int:
    print(f"usage-export keys: {exc}", file=sys.stderr)
    return 1


def _describe(record: ApiKeyRecord) -> str:
    state = f"revoked {record.revoked_at}" if record.revoked_at else "active"
    if record.scheme != HASH_SCHEME:
        state += f" (retired {record.scheme} hash: authenticates nobody, create a new key)"
    scopes = ",".join(record.scopes)
    return f"{record.key_id}  {state}  created {record.created_at}  scopes {scopes}  {record.name}"


def _create(args: argparse.Namespace) -> int:
    scopes = tuple(args.scopes or (USAGE_EXPORT_SCOPE,))
    try:
        key, record = _with_keys(lambda keys: keys.create(args.org, scopes=scopes, name=args.name))
    except ApiKeyError as exc:
        return _refused(exc)
    print(f"created key {record.key_id} for workspace {record.org_id} (scopes {','.join(scopes)})")
    print("store it now: it is not shown again")
    print(key)
    return 0


def _list(args: argparse.Namespace) -> int:
    records = _with_keys(lambda keys: keys.list_for(args.org))
    if not records:
        print(f"workspace {args.org} has no API keys")
    for record in records:
        print(_describe(record))
    return 0


def _revoke(args: argparse.Namespace) -> int:
    if not is_key_id(args.key_id):
        print(
            f"usage-export keys: {args.key_id!r} is not a key id: a key id is {KEY_ID_RULE}",
            file=sys.stderr,
        )
        return 2
    try:
        record = _with_keys(lambda keys: keys.revoke(args.org, args.key_id))
    except ApiKeyError as exc:
        return _refused(exc)
    print(f"revoked: {_describe(record)}")
    return 0
