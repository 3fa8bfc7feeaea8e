"""``usage-export keys create|list|revoke`` against the real store, as an operator runs it."""

from __future__ import annotations

import asyncio
import os
import sys

from services.api.keys import KeyStore, parse_key, pepper_of
from shared.adapters.s3 import S3ObjectStore
from shared.settings import Settings, settings_env


async def _cli(settings: Settings, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services",
        "keys",
        *args,
        env=os.environ | settings_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode()


async def test_create_prints_the_key_last_list_hides_it_revoke_marks_it(
    fresh_settings: Settings,
) -> None:
    status, output = await _cli(fresh_settings, "create", "--org", "ws-cli", "--name", "ci")
    assert status == 0, output
    key = output.strip().splitlines()[-1]
    parsed = parse_key(key)
    assert parsed is not None

    status, listing = await _cli(fresh_settings, "list", "--org", "ws-cli")
    assert status == 0
    assert parsed.key_id in listing
    assert "active" in listing
    assert parsed.secret not in listing

    status, other = await _cli(fresh_settings, "list", "--org", "ws-other")
    assert parsed.key_id not in other

    status, refused = await _cli(fresh_settings, "revoke", "--org", "ws-other", parsed.key_id)
    assert status == 1  # a key is revoked only through its own workspace
    assert "has no key" in refused
    status, revoked = await _cli(fresh_settings, "revoke", "--org", "ws-cli", parsed.key_id)
    assert status == 0, revoked
    async with S3ObjectStore(fresh_settings, fresh_settings.aggregates_bucket) as store:
        record = await KeyStore(store, pepper=pepper_of(fresh_settings)).get(parsed.key_id)
    assert record is not None
    assert record.revoked_at is not None
    assert record.org_id == "ws-cli"
