"""usage.env: what goes in, how it is quoted, and that a shell reads it back."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from pydantic import SecretStr

from shared.embedded.envfile import STACK_FIELDS, render_env_file, stack_env, write_env_file
from shared.embedded.stack import EMBEDDED_KAFKA_OVERRIDES
from shared.settings import Settings


def test_stack_env_reaches_broker_and_store_and_nothing_else() -> None:
    settings = Settings(
        kafka_bootstrap="127.0.0.1:1234",
        s3_access_key=SecretStr("admin"),
        s3_secret_key=SecretStr("s3cr3t"),
        s3_presign_access_key=SecretStr("reader"),
        s3_presign_secret_key=SecretStr("r3ad"),
    ).model_copy(update=EMBEDDED_KAFKA_OVERRIDES)
    env = stack_env(settings)
    assert list(env) == [f"USAGE_{name.upper()}" for name in STACK_FIELDS]
    assert env["USAGE_KAFKA_BOOTSTRAP"] == "127.0.0.1:1234"
    assert env["USAGE_S3_SECRET_KEY"] == "s3cr3t"
    assert env["USAGE_S3_PRESIGN_ACCESS_KEY"] == "reader"
    assert env["USAGE_S3_PRESIGN_SECRET_KEY"] == "r3ad"
    assert env["USAGE_KAFKA_IDEMPOTENCE"] == "false"
    assert env["USAGE_KAFKA_SESSION_TIMEOUT_MS"] == "6000"
    assert "USAGE_INGEST_BATCH_MAX_RECORDS" not in env


def test_unset_presign_keys_are_left_out_not_written_as_none() -> None:
    env = stack_env(Settings())
    assert "USAGE_S3_PRESIGN_ACCESS_KEY" not in env
    assert "None" not in env.values()


def test_values_are_quoted_only_when_a_shell_needs_it() -> None:
    text = render_env_file({"USAGE_A": "http://127.0.0.1:8333", "USAGE_B": "two words"})
    assert text == "USAGE_A=http://127.0.0.1:8333\nUSAGE_B='two words'\n"


BASH = shutil.which("bash")


@pytest.mark.skipif(BASH is None, reason="needs bash")
def test_written_file_is_private_and_sourced_by_a_shell(tmp_path: Path) -> None:
    assert BASH is not None
    path = tmp_path / "usage.env"
    write_env_file(path, {"USAGE_KAFKA_BOOTSTRAP": "127.0.0.1:9092", "USAGE_X": "a b'c"})
    assert path.stat().st_mode & 0o777 == 0o600
    shown = subprocess.run(
        [BASH, "-c", f'set -a; . "{path}"; printf "%s|%s" "$USAGE_KAFKA_BOOTSTRAP" "$USAGE_X"'],
        capture_output=True,
        text=True,
        check=True,
        env={},
    )
    assert shown.stdout == "127.0.0.1:9092|a b'c"
