"""The contract as documents, generated: ``usage-export contracts write`` and its check.

The pydantic models in ``shared.contracts`` are what the services really accept and emit,
so the documents are generated from them, and a unit test fails when a model changes and
the committed files were not regenerated. Output, relative to ``docs/contracts``::

    asyncapi.json                   topics (channels), messages, who sends and receives what
    openapi.json                    the HTTP API (``usage-export api``)
    schemas/usage-event.json        any usage event (discriminated by ``type``)
    schemas/events/{type}.json      one per event type
    schemas/export-request.json     an export request
    schemas/export-completion.json  a completion (success or failure)
    README.md                       what is here and how to regenerate it
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from services.api.openapi import openapi_document
from services.ops.asyncapi import asyncapi_document
from services.ops.json_schemas import GENERATED, REGENERATE, json_schemas

ASYNCAPI = "asyncapi.json"
OPENAPI = "openapi.json"
README = "README.md"
DEFAULT_DIR = Path("docs/contracts")

__all__ = [
    "ASYNCAPI",
    "DEFAULT_DIR",
    "OPENAPI",
    "README",
    "REGENERATE",
    "render_documents",
    "stale_documents",
    "write_documents",
]


def _readme(paths: list[str]) -> str:
    listing = "\n".join(f"- [`{path}`]({path})" for path in sorted(paths))
    return (
        "# Contract documents\n\n"
        f"{GENERATED} A unit test (`tests/unit/test_contract_docs.py`) fails when these "
        "files differ from what the models produce.\n\n"
        "- `asyncapi.json`: AsyncAPI 3.0 description of the five topics of contract §1: "
        "channels (topic addresses and keys), messages, and the operations of ingest and "
        "exporter. Message payloads reference the schemas below.\n"
        "- `openapi.json`: OpenAPI 3.1 description of the HTTP API (`usage-export api`, "
        "docs/api.md), from its route table and body models; the integration tests run "
        "schemathesis against the live service with it.\n"
        "- `schemas/`: JSON Schema 2020-12 of every message; inputs (events, requests) as "
        "they are validated, completions as they are produced. Unknown fields are ignored by "
        "the services, so producers may add fields.\n\n"
        "The id rules of contract §2 (patterns, no `..`) are enforced by validators that "
        "JSON Schema does not show.\n\n"
        f"{listing}\n"
    )


def render_documents() -> dict[str, bytes]:
    """Relative path -> exact file content of every generated document."""
    documents: dict[str, Any] = dict(json_schemas())
    documents[ASYNCAPI] = asyncapi_document()
    documents[OPENAPI] = openapi_document()
    # stdlib json for the indented, human-diffable form; codec (orjson) is for the wire.
    rendered = {
        path: (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()
        for path, doc in documents.items()
    }
    rendered[README] = _readme(list(rendered)).encode()
    return rendered


def write_documents(out_dir: Path) -> list[Path]:
    """Write every document; delete generated schemas that no model produces any more."""
    documents = render_documents()
    schemas_dir = out_dir / "schemas"
    if schemas_dir.is_dir():
        for stale in schemas_dir.rglob("*.json"):
            if stale.relative_to(out_dir).as_posix() not in documents:
                stale.unlink()
    written = []
    for path, content in documents.items():
        target = out_dir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_bytes() != content:
            target.write_bytes(content)
        written.append(target)
    return written


def stale_documents(out_dir: Path) -> list[str]:
    """Paths (relative to ``out_dir``) that are missing, differ, or are no longer generated."""
    documents = render_documents()
    problems = [
        path
        for path, content in documents.items()
        if not (out_dir / path).is_file() or (out_dir / path).read_bytes() != content
    ]
    schemas_dir = out_dir / "schemas"
    if schemas_dir.is_dir():
        problems += sorted(
            path.relative_to(out_dir).as_posix()
            for path in schemas_dir.rglob("*.json")
            if path.relative_to(out_dir).as_posix() not in documents
        )
    return problems
