"""The AsyncAPI 3.0 description of contract §1: five topics, their messages, who does what.

Pydantic writes JSON Schema 2020-12 (``$defs``, an OpenAPI-style ``discriminator``), which
is not the AsyncAPI schema dialect, so message payloads use AsyncAPI's multi-format schema
object, say which dialect they are in, and reference the files of ``json_schemas``. Topic
and group names are the defaults of :class:`Settings`, never the environment, so the
document is the same on every machine. Examples are validated by the models here, so
they cannot drift from what the services accept.
"""

from __future__ import annotations

import hashlib
from importlib.metadata import version
from typing import Any

from pydantic import BaseModel

from services.ops.json_schemas import (
    EXPORT_COMPLETION_SCHEMA,
    EXPORT_REQUEST_SCHEMA,
    GENERATED,
    USAGE_EVENT_SCHEMA,
    event_models,
    event_schema_path,
)
from shared.adapters.dead_letters import MAX_DEAD_LETTER_VALUE
from shared.contracts.completions import CompletionData, ExportCompletion
from shared.contracts.events import EVENT_TYPES, usage_event_adapter
from shared.contracts.requests import ExportRequest
from shared.settings import Settings

PAYLOAD_FORMAT = "application/schema+json;version=draft-2020-12"
KAFKA_BINDING = "0.5.0"


def _default(name: str) -> Any:
    return Settings.model_fields[name].default


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.title() for part in rest)


def _payload(path: str) -> dict[str, Any]:
    return {"schemaFormat": PAYLOAD_FORMAT, "schema": {"$ref": f"./{path}"}}


def _key(description: str) -> dict[str, Any]:
    return {
        "kafka": {
            "key": {"type": "string", "description": description},
            "bindingVersion": KAFKA_BINDING,
        }
    }


def _channel(
    name: str, description: str, messages: dict[str, str], partitions: int | None = None
) -> dict[str, Any]:
    topic = _default(name)
    binding: dict[str, Any] = {"topic": topic}
    if partitions is not None:
        binding["partitions"] = partitions
    binding["bindingVersion"] = KAFKA_BINDING
    return {
        "address": topic,
        "title": topic,
        "description": f"{description} Topic name: `USAGE_{name.upper()}` (default `{topic}`).",
        "messages": {
            key: {"$ref": f"#/components/messages/{ref}"} for key, ref in messages.items()
        },
        "bindings": {"kafka": binding},
    }


def _operation(
    action: str, channel: str, summary: str, group: str | None = None, **extra: Any
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "summary": summary,
    }
    operation["messages"] = [
        {"$ref": f"#/channels/{channel}/messages/{key}"} for key in _CHANNEL_MESSAGES[channel]
    ]
    if group is not None:
        operation["bindings"] = {
            "kafka": {
                "groupId": {"type": "string", "enum": [group]},
                "bindingVersion": KAFKA_BINDING,
            }
        }
    return operation | extra


_EVENT_MESSAGES = {_camel(event_type): event_type for event_type in EVENT_TYPES}
_CHANNEL_MESSAGES: dict[str, list[str]] = {
    "usageEvents": list(_EVENT_MESSAGES),
    "usageEventsDlq": ["deadLetter"],
    "exportRequests": ["exportRequest"],
    "exportCompletions": ["exportCompletion"],
    "exportRequestsDlq": ["deadLetter"],
}

_DEAD_LETTER_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "Kafka headers (UTF-8 values) of a dead letter; see docs/decisions.md.",
    "required": ["error", "error.reason", "source.topic", "source.partition", "source.offset"],
    "properties": {
        "error": {"type": "string", "description": "why, for people: `reason: detail`"},
        "error.reason": {"type": "string", "description": "category, e.g. invalid_json"},
        "source.topic": {"type": "string", "description": "topic the record was read from"},
        "source.partition": {"type": "string", "description": "its partition (decimal)"},
        "source.offset": {"type": "string", "description": "its offset (decimal)"},
        "value.truncated": {
            "type": "string",
            "description": f"original size in bytes when the value was longer than "
            f"{MAX_DEAD_LETTER_VALUE} bytes and is kept truncated; such letters cannot be "
            "replayed",
        },
    },
}
_REPLAY_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "Headers a record may carry on its source topic; consumers ignore them.",
    "properties": {
        "replayed.from": {
            "type": "string",
            "description": "set by `usage-export dlq replay`: `dlq-topic:partition:offset` of "
            "the dead letter this record was re-produced from",
        }
    },
}


def _event_message(event_type: str, model: type[BaseModel]) -> dict[str, Any]:
    summary = (model.__doc__ or f"A `{event_type}` event.").strip().splitlines()[0]
    return {
        "name": event_type,
        "title": f"{event_type} event",
        "summary": summary,
        "contentType": "application/json",
        "headers": {"$ref": "#/components/schemas/ReplayHeaders"},
        "payload": _payload(event_schema_path(event_type)),
        "bindings": _key("org_id of the event (UTF-8)"),
    }


def _examples() -> dict[str, list[dict[str, Any]]]:
    """Examples of contract §2-4, validated here so they cannot drift from the models."""
    event = {
        "event_id": "evt-7f3a", "type": "message", "org_id": "ws-acme",
        "occurred_at": "2026-01-15T09:30:00+01:00", "user_id": "user-42",
        "assistant_id": None, "project_id": "proj-1", "conversation_id": "conv-9",
        "model": "gpt-4.1", "provider": "openai", "source": "WEB", "actions": ["web_search"],
        "usage": {"prompt_tokens": 1200, "completion_tokens": 300,
                  "cached_prompt_tokens": 200, "cost_usd": 0.0042},
    }  # fmt: skip
    request = {
        "request_id": "0b6f7c1e-4f0a-4c57-9d36-5b1b2a8e4d11", "org_id": "ws-acme",
        "data_type": "users",
        "from": {"date": "2026-01-01", "timezone": "Europe/Berlin"},
        "to": {"date": "2026-01-31", "timezone": "Europe/Berlin"},
        "group_by": None, "requested_by": "user-42",
    }  # fmt: skip
    data = CompletionData(
        filePath="users-usage/ws-acme/users-usage-2026-01-01-2026-01-31-0b6f7c1e.csv",
        downloadUrl="https://s3.example/usage-exports/users-usage/ws-acme/...&X-Amz-Signature=...",
        expiresAt="2026-02-01T10:00:00.000Z",
        dataType="users",
        recordCount=1250,
        bytes=183211,
        sha256=hashlib.sha256(b"example").hexdigest(),
        dateRange={"from": "2026-01-01T00:00:00.000+01:00", "to": "2026-01-31T23:59:59.999+01:00"},
    )
    success = ExportCompletion.ok(str(request["request_id"]), "ws-acme", data)
    failure = ExportCompletion.failed(
        "5d2e9a40-8c1b-4f7e-a3d2-6b0c9e1f2a37", "ws-acme", 404, "no usage in the window"
    )
    usage_event_adapter.validate_python(event)
    ExportRequest.model_validate(request)
    return {
        "message": [{"name": "a message", "payload": event}],
        "exportRequest": [{"name": "users, January in Berlin", "payload": request}],
        "exportCompletion": [
            {"name": "success", "payload": success.model_dump(mode="json")},
            {"name": "no data", "payload": failure.model_dump(mode="json")},
        ],
    }


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 description of contract §1: five topics, who sends and receives."""
    examples = _examples()
    messages: dict[str, Any] = {}
    for event_type, model in event_models().items():
        key = _camel(event_type)
        messages[key] = _event_message(event_type, model) | (
            {"examples": examples[key]} if key in examples else {}
        )
    messages["exportRequest"] = {
        "name": "export_request",
        "title": "Export request",
        "summary": "Ask for a CSV export of one workspace's usage over a window (contract §3).",
        "contentType": "application/json",
        "headers": {"$ref": "#/components/schemas/ReplayHeaders"},
        "payload": _payload(EXPORT_REQUEST_SCHEMA),
        "bindings": _key("org_id of the request (UTF-8)"),
        "examples": examples["exportRequest"],
    }
    messages["exportCompletion"] = {
        "name": "export_completion",
        "title": "Export completion",
        "summary": "The outcome of one export request: a signed download URL, or an error "
        "with an HTTP-like status (400, 404, 500, 503; contract §4).",
        "contentType": "application/json",
        "payload": _payload(EXPORT_COMPLETION_SCHEMA),
        "bindings": _key("request_id of the request answered (UTF-8)"),
        "examples": examples["exportCompletion"],
    }
    messages["deadLetter"] = {
        "name": "dead_letter",
        "title": "Dead letter",
        "summary": "A record that could not be processed: its original key and value, with "
        "headers saying why and where from. Inspect and replay with `usage-export dlq`.",
        "headers": {"$ref": "#/components/schemas/DeadLetterHeaders"},
        "payload": {
            "description": "the original value, byte for byte (it may not be JSON), cut to "
            f"{MAX_DEAD_LETTER_VALUE} bytes when longer (header value.truncated)"
        },
        "bindings": _key("the original record's key, unchanged"),
    }
    channels = {
        "usageEvents": _channel(
            "topic_events",
            "Usage events from platform services (contract §2), keyed by org_id. Any of them "
            f"validates against `{USAGE_EVENT_SCHEMA}`.",
            {key: key for key in _EVENT_MESSAGES},
            partitions=_default("events_partitions"),
        ),
        "usageEventsDlq": _channel(
            "topic_events_dlq",
            "Usage events ingest could not accept, with the reason.",
            {"deadLetter": "deadLetter"},
        ),
        "exportRequests": _channel(
            "topic_export_requests",
            "Export requests from any service (contract §3), keyed by org_id.",
            {"exportRequest": "exportRequest"},
            partitions=_default("requests_partitions"),
        ),
        "exportCompletions": _channel(
            "topic_export_completions",
            "One completion per export request delivery (contract §4), keyed by request_id.",
            {"exportCompletion": "exportCompletion"},
        ),
        "exportRequestsDlq": _channel(
            "topic_export_requests_dlq",
            "Export requests that could not be read, with the reason.",
            {"deadLetter": "deadLetter"},
        ),
    }
    ingest, exporter = _default("ingest_group"), _default("exporter_group")
    delivery = _default("delivery_group")
    operations = {
        "ingestReceivesUsageEvents": _operation(
            "receive", "usageEvents",
            f"ingest (group {ingest}) folds events into per-day aggregates in object storage; "
            "offsets are committed only once that state is durable",
            group=ingest,
        ),
        "ingestSendsDeadLetters": _operation(
            "send", "usageEventsDlq",
            "ingest dead-letters events that are not valid JSON or break a rule of §2",
        ),
        "exporterReceivesExportRequests": _operation(
            "receive", "exportRequests",
            f"the exporter (group {exporter}) answers each request with one completion",
            group=exporter,
            reply={
                "channel": {"$ref": "#/channels/exportCompletions"},
                "messages": [{"$ref": "#/channels/exportCompletions/messages/exportCompletion"}],
            },
        ),
        "exporterSendsExportCompletions": _operation(
            "send", "exportCompletions",
            "the exporter publishes the completion of each request it answered (with the "
            "header usage-export-callback: 1 when the request has a callback_url)",
        ),
        "deliveryReceivesExportCompletions": _operation(
            "receive", "exportCompletions",
            f"delivery (group {delivery}) POSTs each completion whose request has a "
            "callback_url to it, signed (contract §4a)",
            group=delivery,
        ),
        "exporterSendsDeadLetters": _operation(
            "send", "exportRequestsDlq",
            "the exporter dead-letters requests that are not readable requests",
        ),
    }  # fmt: skip
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "usage-export",
            "version": version("usage-export"),
            "description": "Workspace usage exports for an AI platform: usage events in, "
            "CSV exports with signed URLs out. The contract is docs/contract.md; payload "
            f"schemas are in schemas/ (JSON Schema 2020-12). {GENERATED}",
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": _default("kafka_bootstrap"),
                "protocol": "kafka",
                "description": "USAGE_KAFKA_BOOTSTRAP; the default is the broker that "
                "`usage-export up` starts",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": {
                "DeadLetterHeaders": _DEAD_LETTER_HEADERS,
                "ReplayHeaders": _REPLAY_HEADERS,
            },
            "messages": messages,
        },
    }
