"""Module boundaries (issue 14, item 5), read from the source with ``ast``.

* The HTTP API, the command line and the operator tools use what they share with the
  exporter from ``shared/`` (request validation, outcomes, the request ledger,
  completion shaping, the export client); the command line may only *launch* the
  exporter (``services.exporter.app``).
* Every Kafka consumer of the services is built by ``shared.adapters.kafka.make_consumer``,
  so each one gets the same settings (bootstrap, manual commits, session timeouts).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_LAUNCHES_THE_EXPORTER = "services.exporter.app"


def _modules(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py"))


def _imported(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def test_the_api_cli_and_ops_use_no_exporter_internals() -> None:
    found = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in _modules("services/api", "services/cli", "services/ops")
        for name in _imported(ast.parse(path.read_text()))
        if (name == "services.exporter" or name.startswith("services.exporter."))
        and not name.startswith(_LAUNCHES_THE_EXPORTER)
    ]
    assert found == []


def test_every_kafka_consumer_is_built_by_make_consumer() -> None:
    factory = ROOT / "shared/adapters/kafka.py"
    found = []
    for path in _modules("services", "shared"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            called = node.func
            name = called.attr if isinstance(called, ast.Attribute) else getattr(called, "id", "")
            if name == "AIOKafkaConsumer" and path != factory:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []
