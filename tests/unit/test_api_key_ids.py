"""Issue 13, finding 7a: a key id is checked before it becomes an object key."""

from __future__ import annotations

import pytest

from services.api.keys import ApiKeyError, KeyStore, key_object
from services.cli import main
from tests.unit.memory_store import MemoryStore
from tests.unit.test_api_auth import PEPPER

BAD_IDS = [
    "../../aggregates/x",
    "0123456789ABCDEF",
    "0123456789abcde",
    "a/b",
    "",
    "0123456789abcdef0",
]


@pytest.mark.parametrize("key_id", BAD_IDS)
def test_only_key_ids_become_object_keys(key_id: str) -> None:
    with pytest.raises(ApiKeyError, match="is not a key id"):
        key_object(key_id)


@pytest.mark.parametrize("key_id", BAD_IDS)
async def test_revoke_refuses_a_bad_key_id_before_reading_the_store(key_id: str) -> None:
    store = MemoryStore()
    keys = KeyStore(store, pepper=PEPPER)
    with pytest.raises(ApiKeyError, match="is not a key id"):
        await keys.revoke("ws-acme", key_id)
    assert await keys.get(key_id) is None
    assert store.gets == []


def test_the_cli_answers_a_bad_key_id_with_one_line_and_a_failing_status(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Before the fix the id reached the store, which refused it, and the CLI crashed with
    a traceback. No store is reachable here: the answer must come before any call."""
    status = main(["keys", "revoke", "--org", "ws-acme", "../../etc/passwd"])
    captured = capsys.readouterr()
    assert status != 0
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("usage-export keys: '../../etc/passwd' is not a key id")
