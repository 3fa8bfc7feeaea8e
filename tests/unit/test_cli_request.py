"""``usage-export request``: the options become the contract §3 message it publishes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.cli import build_parser, request
from shared.settings import Settings


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The messages ``_run`` would publish, instead of publishing them."""
    sent: list[dict[str, Any]] = []

    async def run(
        settings: Settings,
        message: dict[str, Any],
        target: Path | None,
        wait_s: float,
        console: Any,
    ) -> int:
        del settings, target, wait_s, console
        sent.append(message)
        return 0

    monkeypatch.setattr(request, "_run", run)
    return sent


def _request(*options: str) -> int:
    argv = ["request", "users", "--org", "ws-1", "--from", "2026-01-01", "--to", "2026-03-31"]
    args = build_parser().parse_args([*argv, *options])
    result: int = args.func(args)
    return result


def test_bucket_and_format_are_sent_when_given(published: list[dict[str, Any]]) -> None:
    assert _request("--bucket", "week", "--format", "parquet", "--timezone", "Asia/Kolkata") == 0
    (message,) = published
    assert message["bucket"] == "week"
    assert message["format"] == "parquet"
    assert message["from"] == {"date": "2026-01-01", "timezone": "Asia/Kolkata"}


def test_no_bucket_and_no_format_are_left_out(published: list[dict[str, Any]]) -> None:
    assert _request() == 0
    (message,) = published
    assert "bucket" not in message
    assert "format" not in message
    assert "destination" not in message


def test_a_destination_is_sent_when_given(published: list[dict[str, Any]]) -> None:
    assert _request("--destination", "archive") == 0
    (message,) = published
    assert message["destination"] == "archive"


def test_an_unknown_bucket_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        _request("--bucket", "hour")
    assert exited.value.code == 2
    assert "--bucket" in capsys.readouterr().err
