"""Commands with nothing listening end in one line naming what they tried, exit 3."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from aiokafka.errors import KafkaConnectionError

from services.cli import MISCONFIGURED, main
from services.cli.unreachable import UNREACHABLE, unreachable_dependency
from shared.errors import StoreUnavailable
from shared.settings import Settings, load_settings

NOBODY = "127.0.0.1:1"  # port 1 on loopback: nothing listens there


@pytest.fixture
def nothing_listening(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in [name for name in os.environ if name.startswith("USAGE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("USAGE_KAFKA_BOOTSTRAP", NOBODY)
    monkeypatch.setenv("USAGE_S3_ENDPOINT", f"http://{NOBODY}")
    monkeypatch.setenv("USAGE_S3_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("USAGE_S3_ACCESS_KEY", "usage-dev")  # as usage.env gives them
    monkeypatch.setenv("USAGE_S3_SECRET_KEY", "usage-dev-secret")
    load_settings.cache_clear()
    yield
    load_settings.cache_clear()


@pytest.mark.usefixtures("nothing_listening")
@pytest.mark.parametrize(
    ("argv", "setting"),
    [
        (["keys", "list", "--org", "ws-1"], "USAGE_S3_ENDPOINT"),
        (["keys", "create", "--org", "ws-1"], "USAGE_S3_ENDPOINT"),
        (["request", "users", "--org", "ws-1", "--from", "2026-01-01", "--to", "2026-01-31"],
         "USAGE_KAFKA_BOOTSTRAP"),
        (["status"], "USAGE_KAFKA_BOOTSTRAP"),
    ],
)  # fmt: skip
def test_a_command_with_nothing_listening_says_so_in_one_line(
    argv: list[str], setting: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == UNREACHABLE
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    if argv[0] != "status":  # status prints its table on stdout, the line among it
        lines = out.err.strip().splitlines()
        assert len(lines) == 1, out.err
        assert lines[0].startswith(f"usage-export {argv[0]}: cannot reach")
        assert setting in lines[0]
        assert "usage-export up" in lines[0]


def test_the_dependency_is_found_through_causes_and_exception_groups() -> None:
    settings = Settings(kafka_bootstrap=NOBODY)
    try:
        try:
            raise KafkaConnectionError("Unable to bootstrap")
        except KafkaConnectionError as exc:
            raise RuntimeError("publishing failed") from exc
    except RuntimeError as wrapped:
        line = unreachable_dependency(ExceptionGroup("tasks", [wrapped]), settings)
    assert line is not None
    assert line.startswith(f"cannot reach the broker at {NOBODY} (USAGE_KAFKA_BOOTSTRAP)")
    store = unreachable_dependency(StoreUnavailable("GET x"), settings)
    assert store is not None
    assert "(USAGE_S3_ENDPOINT)" in store
    assert unreachable_dependency(ValueError("a bug"), settings) is None


@pytest.mark.parametrize("service", ["ingest", "exporter", "api"])
def test_a_service_with_nothing_listening_gives_up_in_one_line_after_its_wait(
    service: str,
) -> None:
    """Run as its own process, as a pod would: a log line per attempt while it waits, then
    one line naming what it tried, exit 3, no traceback and nothing left unclosed."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("USAGE_")}
    env |= {
        "USAGE_KAFKA_BOOTSTRAP": NOBODY,
        "USAGE_S3_ENDPOINT": f"http://{NOBODY}",
        "USAGE_S3_MAX_ATTEMPTS": "1",
        "USAGE_S3_ACCESS_KEY": "usage-dev",
        "USAGE_S3_SECRET_KEY": "usage-dev-secret",
        "USAGE_STARTUP_WAIT_S": "1",
        "USAGE_KAFKA_RETRY_MAX_S": "0.3",
        "USAGE_METRICS_HOST": "127.0.0.1",
        f"USAGE_{service.upper()}_METRICS_PORT": "0",
        "USAGE_API_PORT": "0",
        "USAGE_LOG_FORMAT": "text",
    }
    done = subprocess.run(
        [sys.executable, "-m", "services", service],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == UNREACHABLE, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"usage-export {service}: cannot reach the broker at {NOBODY}")
    assert "(USAGE_KAFKA_BOOTSTRAP)" in last
    assert "waiting for" in done.stderr, "a line per attempt while it waits"
    assert "Traceback" not in done.stderr
    assert "Unclosed" not in done.stderr


def test_a_setting_to_fix_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No store keys (the default credential chain) and no pepper: ``keys create`` cannot
    hash a key; it says which setting to set, without a traceback."""
    for name in [name for name in os.environ if name.startswith("USAGE_")]:
        monkeypatch.delenv(name)
    load_settings.cache_clear()
    try:
        assert main(["keys", "create", "--org", "ws-1"]) == MISCONFIGURED
    finally:
        load_settings.cache_clear()
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    lines = out.err.strip().splitlines()
    assert len(lines) == 1, out.err
    assert lines[0].startswith("usage-export keys: set USAGE_API_KEY_PEPPER")
