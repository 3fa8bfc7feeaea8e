"""``usage-export up`` argument handling and lazy service loading, without servers."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest
from rich.console import Console

from services.cli import up


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    up.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["up", *argv])


def test_defaults_follow_the_contract() -> None:
    args = _parse()
    assert (args.data_dir, args.kafka_port, args.s3_port) == (Path(".usage-export"), 9092, 8333)
    assert args.infra_only is False
    assert args.api_port == 8080
    assert args.events_partitions is None
    assert args.func is up.run_up


@pytest.mark.parametrize("argv", [["--kafka-port", "70000"], ["--events-partitions", "0"]])
def test_out_of_range_numbers_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _parse(*argv)
    assert exit_info.value.code == 2


def test_a_service_not_written_yet_is_skipped_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        up,
        "SERVICES",
        (("future", "services.no_such_service.app", "run"), ("cli", "services.cli.up", "run_up")),
    )
    out = io.StringIO()
    loaded = up._load_services(Console(file=out, width=200))
    assert [name for name, _ in loaded] == ["cli"]
    assert "future: not part of this version" in out.getvalue()


def test_a_service_with_a_broken_import_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    package = tmp_path / "brokensvc"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "app.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(up, "SERVICES", (("broken", "brokensvc.app", "run"),))
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_xyz"):
        up._load_services(Console(file=io.StringIO()))
