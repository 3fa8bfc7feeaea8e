"""``usage-export up`` argument handling and lazy service loading, without servers."""

from __future__ import annotations

import argparse
import io
import socket
from pathlib import Path

import pytest
from rich.console import Console

from services.cli import up
from shared.settings import Settings


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


def test_metrics_ports_default_to_the_settings_and_accept_zero() -> None:
    args = _parse("--ingest-metrics-port", "0", "--api-metrics-port", "9999")
    assert (args.ingest_metrics_port, args.exporter_metrics_port) == (0, None)
    assert args.api_metrics_port == 9999
    with pytest.raises(SystemExit):
        _parse("--exporter-metrics-port", "-1")


def test_a_busy_default_metrics_port_moves_and_a_given_one_stays(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        settings = Settings(ingest_metrics_port=taken, exporter_metrics_port=0)
        chosen = up._metrics_ports(_parse("--api-metrics-port", "0"), settings)
    assert set(chosen) == {
        "ingest_metrics_port",
        "compactor_metrics_port",
        "exporter_metrics_port",
        "api_metrics_port",
        "delivery_metrics_port",
        "scheduler_metrics_port",
    }
    assert taken not in chosen.values()
    assert 0 not in chosen.values()


def test_port_0_means_any_free_port_for_the_broker_store_and_api() -> None:
    kafka, s3, api = up._listening_ports(_parse("--kafka-port", "0", "--s3-port", "0"))
    assert api == 8080
    assert 0 not in (kafka, s3)
    assert len({kafka, s3, api}) == 3
    assert up._listening_ports(_parse("--api-port", "0"))[:2] == (9092, 8333)
    assert up._listening_ports(_parse("--api-port", "0"))[2] not in (0, 9092, 8333)


def test_up_runs_every_service_the_compactor_included() -> None:
    loaded = up._load_services(Console(file=io.StringIO()))
    assert [name for name, _ in loaded] == [
        "ingest",
        "compactor",
        "exporter",
        "api",
        "delivery",
        "scheduler",
    ]
    assert {service for service, _ in up.METRICS_PORTS} == {name for name, _ in loaded}
