"""The committed contract documents are exactly what the models produce, and hang together."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from services.ops.contract_docs import (
    ASYNCAPI,
    REGENERATE,
    render_documents,
    stale_documents,
    write_documents,
)
from services.ops.json_refs import iter_refs, resolve_pointer, unresolved_refs
from shared.contracts.events import EVENT_TYPES
from shared.settings import Settings

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "contracts"


@pytest.fixture(scope="module")
def documents() -> dict[str, bytes]:
    return render_documents()


@pytest.fixture(scope="module")
def asyncapi(documents: dict[str, bytes]) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(documents[ASYNCAPI])
    return parsed


def test_committed_documents_are_up_to_date(documents: dict[str, bytes]) -> None:
    stale = stale_documents(COMMITTED)
    assert not stale, (
        f"docs/contracts is out of date for {stale}: a contract model changed; run "
        f"`{REGENERATE}` and commit the result"
    )
    committed = {
        path.relative_to(COMMITTED).as_posix() for path in COMMITTED.rglob("*") if path.is_file()
    }
    assert committed == set(documents), f"run `{REGENERATE}`: unexpected or missing files"


def test_rendering_is_deterministic(documents: dict[str, bytes]) -> None:
    assert render_documents() == documents


def test_every_event_type_has_its_schema_and_message(
    documents: dict[str, bytes], asyncapi: dict[str, Any]
) -> None:
    for event_type in EVENT_TYPES:
        schema = json.loads(documents[f"schemas/events/{event_type}.json"])
        assert schema["properties"]["type"]["const"] == event_type
    union = json.loads(documents["schemas/usage-event.json"])
    assert set(union["discriminator"]["mapping"]) == set(EVENT_TYPES)
    names = {message["name"] for message in asyncapi["components"]["messages"].values()}
    assert set(EVENT_TYPES) <= names


def test_schemas_use_the_wire_names_and_modes(documents: dict[str, bytes]) -> None:
    request = json.loads(documents["schemas/export-request.json"])
    assert {"from", "to", "request_id"} <= set(request["required"])  # alias, not from_
    completion = json.loads(documents["schemas/export-completion.json"])
    assert set(completion["properties"]) == {"request_id", "org_id", "success", "data", "error"}
    for content in documents.values():
        assert content.endswith(b"\n")


def test_asyncapi_has_the_required_top_level_fields(asyncapi: dict[str, Any]) -> None:
    assert asyncapi["asyncapi"] == "3.0.0"
    assert asyncapi["info"]["title"]
    assert asyncapi["info"]["version"]
    for section in ("channels", "operations", "components"):
        assert asyncapi[section], section
    for operation in asyncapi["operations"].values():
        assert operation["action"] in ("send", "receive")
        assert operation["channel"]["$ref"].startswith("#/channels/")


def test_channels_are_the_five_topics_of_the_contract(asyncapi: dict[str, Any]) -> None:
    defaults = Settings.model_fields
    expected = {
        defaults[name].default
        for name in (
            "topic_events",
            "topic_events_dlq",
            "topic_export_requests",
            "topic_export_completions",
            "topic_export_requests_dlq",
        )
    }
    addresses = {channel["address"] for channel in asyncapi["channels"].values()}
    assert addresses == expected
    dead_letter = asyncapi["components"]["messages"]["deadLetter"]
    headers = resolve_pointer(asyncapi, dead_letter["headers"]["$ref"].removeprefix("#"))
    assert "error" in headers["required"]


def test_operations_say_who_receives_and_sends_what(asyncapi: dict[str, Any]) -> None:
    by_channel = {
        (op["action"], op["channel"]["$ref"].rsplit("/", 1)[-1])
        for op in asyncapi["operations"].values()
    }
    assert ("receive", "usageEvents") in by_channel
    assert ("receive", "exportRequests") in by_channel
    assert ("send", "exportCompletions") in by_channel
    assert ("send", "usageEventsDlq") in by_channel


def test_every_reference_resolves(documents: dict[str, bytes], asyncapi: dict[str, Any]) -> None:
    assert unresolved_refs(documents) == []
    refs = set(iter_refs(asyncapi))
    assert any(ref.startswith("./schemas/") for ref in refs)  # the check saw file references


def test_a_broken_reference_is_reported() -> None:
    documents = {
        "a.json": b'{"x": {"$ref": "./b.json#/$defs/missing"}, "y": {"$ref": "#/nope"}}',
        "b.json": b'{"$defs": {"there": {}}}',
    }
    assert unresolved_refs(documents) == [
        "a.json: ./b.json#/$defs/missing",
        "a.json: #/nope",
    ]
    assert unresolved_refs({"a.json": b'{"$ref": "c.json"}'}) == ["a.json: c.json"]


def test_write_then_check_round_trips_and_prunes_stale_schemas(tmp_path: Path) -> None:
    leftover = tmp_path / "schemas" / "events" / "retired_type.json"
    leftover.parent.mkdir(parents=True)
    leftover.write_text("{}")
    assert "schemas/events/retired_type.json" in stale_documents(tmp_path)
    write_documents(tmp_path)
    assert not leftover.exists()
    assert stale_documents(tmp_path) == []
    (tmp_path / ASYNCAPI).write_text("{}")
    assert stale_documents(tmp_path) == [ASYNCAPI]
