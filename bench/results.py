"""``bench/results.json``: one section per benchmark, merged so that running one
benchmark keeps the others' latest figures."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

DEFAULT_PATH = Path(__file__).with_name("results.json")
SCHEMA = 1


def load(path: Path) -> dict[str, Any]:
    """The file's content, or an empty document when it is missing or unreadable."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {"schema": SCHEMA, "benchmarks": {}}
    if not isinstance(document, dict) or not isinstance(document.get("benchmarks"), dict):
        return {"schema": SCHEMA, "benchmarks": {}}
    return document


def merged(
    document: dict[str, Any], name: str, section: dict[str, Any], machine: dict[str, Any]
) -> dict[str, Any]:
    """``document`` with benchmark ``name`` replaced by ``section`` (others kept)."""
    benchmarks = dict(document.get("benchmarks", {}))
    benchmarks[name] = section
    return {"schema": SCHEMA, "machine": machine, "benchmarks": benchmarks}


def write(path: Path, document: dict[str, Any]) -> None:
    """Write atomically (temp file + rename): an interrupted run never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".results-", suffix=".json")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def record(path: Path, name: str, section: dict[str, Any], machine: dict[str, Any]) -> None:
    write(path, merged(load(path), name, section, machine))
