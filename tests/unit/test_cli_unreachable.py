"""Commands with nothing listening end in one line naming what they tried, exit 3."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from aiokafka.errors import KafkaConnectionError

from services.cli import main
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
