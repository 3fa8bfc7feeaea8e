"""A batch of ``usage.events`` record values, decoded by typed structs straight into columns.

``decode_batch`` turns the values of a batch of Kafka records into what storage format 3
needs: the activity events as one Arrow table in ``shared.columnar.schema.FACTS`` layout,
the upserts as dimension versions (``shared.domain.dimensions.dimension_update``'s form),
and the rejections — each with the index of its record in the batch.

msgspec structs mirror the pydantic models of ``shared.contracts.events`` (ids, lengths,
bounds, strict numbers and booleans, ``null`` meaning "absent", the ``type`` tag) and
decode a well-formed event in one C call. They may only ever accept a subset of what the
models accept, building exactly the row the models' path builds; every record they do
not accept — malformed or merely unusual — is handed to
``services.ingest.validation.read_record``, the current path, whose models stay the one
authority on what is valid and why not. So a rejection here is always ``read_record``'s,
reason and text. What the structs cannot say is checked after decoding, or left to the
models:

- ``occurred_at`` must be the plain RFC 3339 form (``T``, ``Z`` or ``±HH:MM`` with HH ≤ 23
  and MM ≤ 59, at most six fraction digits) that ``datetime.fromisoformat`` reads as the
  models do (it would also read ``+00:60``, which the models refuse); any other spelling
  (lower case ``t``/``z``, more fraction digits) goes to the models, which accept it, and
  what RFC 3339 forbids (``+0530``, ``+05``, a space for ``T``) goes there to be refused;
- ``cached_prompt_tokens + cache_creation_tokens <= prompt_tokens``, and the accepted
  range of ``occurred_at`` (``AcceptedRange``), are checked after decoding;
- ``joined_at`` is taken only as a plain ``YYYY-MM-DD`` date.

Unknown fields are ignored by the models (``extra="ignore"``), but the structs forbid them:
msgspec skips an unknown field's value without the checks orjson makes (it lets invalid
UTF-8 and numbers beyond a double's range through there), so an event carrying one goes
to ``read_record``, which accepts it as the models do, at today's speed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Final, cast

import msgspec
import numpy as np
import pyarrow as pa

from services.ingest.validation import AcceptedRange, Rejected, read_record
from shared.columnar.schema import (
    FACTS,
    KIND_API_REQUEST,
    KIND_MESSAGE,
    KIND_PAYG,
    DimensionVersion,
)
from shared.contracts.events import MAX_REQUESTS, MAX_TOKENS, MAX_USD
from shared.contracts.ids import is_valid_event_id, is_valid_id
from shared.domain.dimensions import (
    SETTINGS_ENTITY,
    DimensionEvent,
    dimension_update,
    occurred_ms,
)
from shared.domain.facts import API_REQUEST, MESSAGE, PAYG, Fact, to_nano

# msgspec searches patterns (``re.search``) without ``re.ASCII``: anchored with ``^`` and
# ``\Z`` (``$`` would allow a trailing newline), digits spelled ``[0-9]`` (``\d`` is any
# Unicode digit).
_TIMESTAMP: Final = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])\Z"
)
# joined_at: a plain date, or a plain timestamp whose local date it means
_DATE: Final = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(?:\Z|T)"

_PLAIN_TIMESTAMP: Final = re.compile(_TIMESTAMP).search

# Ids are checked after decoding with the contract's own functions (a pattern per field
# costs more than the rest of the decoding); workspace, user, agent... ids repeat, so the
# valid ones are remembered.
EntityId = str
EventId = str
Timestamp = Annotated[str, msgspec.Meta(pattern=_TIMESTAMP)]
ShortText = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
OptionalShortText = Annotated[str, msgspec.Meta(max_length=256)] | None
Text = Annotated[str, msgspec.Meta(max_length=4096)] | None
Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_TOKENS)] | None
Requests = Annotated[int, msgspec.Meta(ge=1, le=MAX_REQUESTS)] | None
# A JSON number beyond a double's range is an error to msgspec, never inf: no NaN, no inf.
Amount = Annotated[float, msgspec.Meta(ge=0, le=MAX_USD)]
Flag = bool | None  # every field is optional: None is the model's default (absent or null)


class _Struct(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, gc=False):
    pass


class Usage(_Struct, kw_only=True):
    prompt_tokens: Count = None
    completion_tokens: Count = None
    cached_prompt_tokens: Count = None
    cache_creation_tokens: Count = None
    cost_usd: Amount | None = None


class _Event(_Struct, tag_field="type", kw_only=True):
    event_id: EventId
    org_id: EntityId
    occurred_at: Timestamp


class _ModelCall(_Event, kw_only=True):
    model: ShortText
    provider: ShortText
    byok: Flag = None
    deployment: OptionalShortText = None
    requests: Requests = None
    usage: Usage | None = None


class Message(_ModelCall, tag="message", kw_only=True):
    user_id: EntityId
    assistant_id: EntityId | None = None
    project_id: EntityId | None = None
    conversation_id: OptionalShortText = None
    source: ShortText | None = None
    actions: Annotated[list[ShortText], msgspec.Meta(max_length=256)] | None = None


class ApiRequest(_ModelCall, tag="api_request", kw_only=True):
    api_key_id: EntityId
    source: ShortText | None = None


class Payg(_Event, tag="payg_consumption", kw_only=True):
    user_id: EntityId
    amount: Amount


class _Upsert(_Event, kw_only=True):
    deleted: Flag = None


class UserUpserted(_Upsert, tag="user_upserted", kw_only=True):
    user_id: EntityId
    name: Text = None
    email: Text = None
    role: Text = None
    joined_at: Annotated[str, msgspec.Meta(pattern=_DATE)] | None = None  # checked after
    department: Text = None
    company_name: Text = None
    license_type: Text = None
    payg_limit: Amount | None = None


class AgentUpserted(_Upsert, tag="agent_upserted", kw_only=True):
    assistant_id: EntityId
    name: Text = None
    description: Text = None
    url: Text = None
    owner_id: Text = None
    owner_email: Text = None


class ProjectUpserted(_Upsert, tag="project_upserted", kw_only=True):
    project_id: EntityId
    name: Text = None
    owner_id: Text = None
    owner_email: Text = None


class ApiKeyUpserted(_Upsert, tag="api_key_upserted", kw_only=True):
    api_key_id: EntityId
    name: Text = None


class WorkspaceSettings(_Event, tag="workspace_settings", kw_only=True):
    byok: Flag = None
    user_level_data: Flag = None


Event = (
    Message
    | ApiRequest
    | Payg
    | UserUpserted
    | AgentUpserted
    | ProjectUpserted
    | ApiKeyUpserted
    | WorkspaceSettings
)
_DECODER: Final = msgspec.json.Decoder(Event)

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)
_DAY_MS: Final = 86_400_000

#: One row of FACTS without ``day`` (derived from ``occurred_ms`` per column):
#: org_id, kind, event_id, occurred_ms, user_id, api_key_id, assistant_id, project_id,
#: conversation_id, model, provider, byok, deployment, source, actions, requests,
#: prompt_tokens, completion_tokens, cached_tokens, creation_tokens, cost_nano, amount_nano.
Row = tuple[Any, ...]
_ROW_NAMES: Final = tuple(name for name in FACTS.names if name != "day")


class _Fallback(Exception):
    """The struct decoded, but a rule it cannot state failed: the models decide."""


@dataclass(slots=True)
class DecodedBatch:
    """A batch's records, by kind; every list names the record's index in the batch."""

    facts: pa.Table  # FACTS rows of the accepted activity events, in record order
    fact_records: list[int]
    #: (record index, org_id, version) of the accepted upserts, in record order
    dimensions: list[tuple[int, str, DimensionVersion]] = field(default_factory=list)
    rejected: list[tuple[int, Rejected]] = field(default_factory=list)
    #: records the structs left to ``read_record`` (rejected ones included)
    by_models: int = 0


def decode_batch(
    values: Sequence[bytes | None], accepted: AcceptedRange, *, max_bytes: int
) -> DecodedBatch:
    """Decode record values: every accepted activity event a FACTS row, every accepted
    upsert a dimension version, every other record ``read_record``'s rejection."""
    rows: list[Row] = []
    fact_records: list[int] = []
    dimensions: list[tuple[int, str, DimensionVersion]] = []
    rejected: list[tuple[int, Rejected]] = []
    by_models = 0
    decode = _DECODER.decode
    oldest, newest = accepted.oldest_ms, accepted.newest_ms
    for index, value in enumerate(values):
        if value is not None and len(value) <= max_bytes:
            try:
                event = decode(value)
                if not is_valid_event_id(event.event_id):
                    raise _Fallback
                _ids(event.org_id)
                ts = _epoch_ms(event.occurred_at)
                if not oldest <= ts <= newest:
                    raise _Fallback
                build = _ROWS.get(type(event))
                if build is not None:
                    rows.append(build(event, ts))
                    fact_records.append(index)
                else:
                    dimensions.append((index, event.org_id, _version(event, ts)))
                continue
            except (msgspec.DecodeError, _Fallback, RecursionError):
                # ValidationError is a DecodeError; msgspec raises RecursionError on JSON
                # nested too deeply, which the models reject as invalid JSON.
                pass
        by_models += 1
        result = read_record(value, accepted, max_bytes=max_bytes)
        if type(result) is tuple:
            org_id, fact = result
            rows.append(_fact_row(org_id, fact))
            fact_records.append(index)
        elif isinstance(result, Rejected):
            rejected.append((index, result))
        else:
            upsert = cast(DimensionEvent, result)
            kind, entity, attributes = dimension_update(upsert)
            version = (kind, entity, occurred_ms(upsert), upsert.event_id, attributes)
            dimensions.append((index, upsert.org_id, version))
    return DecodedBatch(_table(rows), fact_records, dimensions, rejected, by_models)


def _table(rows: list[Row]) -> pa.Table:
    columns = dict(zip(_ROW_NAMES, zip(*rows, strict=True), strict=True)) if rows else {}
    occurred = np.fromiter(columns.pop("occurred_ms", ()), dtype=np.int64, count=len(rows))
    built = {
        "occurred_ms": pa.array(occurred),
        "day": pa.array((occurred // _DAY_MS).astype(np.int32)).cast(pa.date32()),
    }
    arrays = [
        built[name] if name in built else pa.array(columns.get(name, ()), FACTS.field(name).type)
        for name in FACTS.names
    ]
    return pa.Table.from_arrays(arrays, schema=FACTS)


def _epoch_ms(text: str) -> int:
    """Of a timestamp in the plain form (the struct's pattern checked it)."""
    try:
        return (datetime.fromisoformat(text) - _EPOCH) // _MS
    except ValueError:  # e.g. a 30 February, or an offset of 24:00: the models decide
        raise _Fallback from None


_VALID_IDS: Final[set[str]] = set()


def _ids(*values: str | None) -> None:
    """Each value is None or a valid id (``shared.contracts.ids``)."""
    for value in values:
        if value is None or value in _VALID_IDS:
            continue
        if not is_valid_id(value):
            raise _Fallback
        if len(_VALID_IDS) >= 100_000:  # bounded, whatever the workspaces
            _VALID_IDS.clear()
        _VALID_IDS.add(value)


def _date(text: str) -> None:
    try:
        date.fromisoformat(text)
    except ValueError:
        raise _Fallback from None


def _usage(usage: Usage | None) -> tuple[int, int, int, int, int]:
    if usage is None:
        return 0, 0, 0, 0, 0
    prompt = usage.prompt_tokens or 0
    cached = usage.cached_prompt_tokens or 0
    creation = usage.cache_creation_tokens or 0
    if cached + creation > prompt:
        raise _Fallback
    cost = usage.cost_usd
    return (
        prompt,
        usage.completion_tokens or 0,
        cached,
        creation,
        0 if cost is None else to_nano(cost),
    )


def _message(event: Message, ts: int) -> Row:
    _ids(event.user_id, event.assistant_id, event.project_id)
    source = event.source
    actions = event.actions
    return (
        event.org_id, KIND_MESSAGE, event.event_id, ts, event.user_id, None,
        event.assistant_id, event.project_id, event.conversation_id, event.model,
        event.provider, event.byok or False, event.deployment or "",
        "WEB" if source is None else source.upper(),
        [] if actions is None else sorted(set(actions)),
        event.requests or 1, *_usage(event.usage), None,
    )  # fmt: skip


def _api_request(event: ApiRequest, ts: int) -> Row:
    _ids(event.api_key_id)
    source = event.source
    return (
        event.org_id, KIND_API_REQUEST, event.event_id, ts, None, event.api_key_id, None,
        None, None, event.model, event.provider, event.byok or False, event.deployment or "",
        "API" if source is None else source.upper(), None, event.requests or 1,
        *_usage(event.usage), None,
    )  # fmt: skip


def _payg(event: Payg, ts: int) -> Row:
    _ids(event.user_id)
    return (
        event.org_id, KIND_PAYG, event.event_id, ts, event.user_id, None, None, None, None,
        None, None, None, None, None, None, None, None, None, None, None, None,
        to_nano(event.amount),
    )  # fmt: skip


_ROWS: Final[dict[type[Any], Any]] = {Message: _message, ApiRequest: _api_request, Payg: _payg}


def _fact_row(org_id: str, fact: Fact) -> Row:
    """The row of a fact the models' path built (``shared.domain.facts`` layout)."""
    kind = fact[0]
    if kind == MESSAGE:
        (_, event_id, ts, user, assistant, project, conversation, model, provider, byok,
         deployment, source, actions, *work) = fact  # fmt: skip
        return (
            org_id, KIND_MESSAGE, event_id, ts, user, None, assistant, project, conversation,
            model, provider, byok, deployment, source, actions, *work, None,
        )  # fmt: skip
    if kind == API_REQUEST:
        (_, event_id, ts, api_key, model, provider, byok, deployment, source, *work) = fact
        return (
            org_id, KIND_API_REQUEST, event_id, ts, None, api_key, None, None, None, model,
            provider, byok, deployment, source, None, *work, None,
        )  # fmt: skip
    if kind == PAYG:
        _, event_id, ts, user, amount = fact
        return (org_id, KIND_PAYG, event_id, ts, user, *(None,) * 16, amount)
    raise ValueError(f"unknown fact kind {kind!r}")


def _version(event: Any, ts: int) -> DimensionVersion:
    """``(kind, entity, occurred_ms, event_id, attributes)`` as ``dimension_update`` says."""
    deleted = getattr(event, "deleted", None) or False
    # One explicit attribute map per kind (same shape, different fields): hot path, and each
    # reads against its event model and its query's text_attribute() names.
    if isinstance(event, UserUpserted):
        _ids(event.user_id)
        joined = event.joined_at
        if joined is not None:
            if len(joined) == 10:
                _date(joined)
            elif _PLAIN_TIMESTAMP(joined) is None:
                raise _Fallback
            else:
                _epoch_ms(joined)  # a valid instant; its local date is its first 10 characters
                joined = joined[:10]
        limit = event.payg_limit
        return ("users", event.user_id, ts, event.event_id, {
            "name": event.name or "",
            "email": event.email or "",
            "role": event.role or "",
            "joined_at": joined or "",
            "department": event.department or "",
            "company_name": event.company_name or "",
            "license_type": event.license_type or "",
            "payg_limit": None if limit is None else to_nano(limit),
            "deleted": deleted,
        })  # fmt: skip
    if isinstance(event, AgentUpserted):
        _ids(event.assistant_id)
        return ("agents", event.assistant_id, ts, event.event_id, {
            "name": event.name or "",
            "description": event.description or "",
            "url": event.url or "",
            "owner_id": event.owner_id or "",
            "owner_email": event.owner_email or "",
            "deleted": deleted,
        })  # fmt: skip
    if isinstance(event, ProjectUpserted):
        _ids(event.project_id)
        return ("projects", event.project_id, ts, event.event_id, {
            "name": event.name or "",
            "owner_id": event.owner_id or "",
            "owner_email": event.owner_email or "",
            "deleted": deleted,
        })  # fmt: skip
    if isinstance(event, ApiKeyUpserted):
        _ids(event.api_key_id)
        attributes = {"name": event.name or "", "deleted": deleted}
        return ("api_keys", event.api_key_id, ts, event.event_id, attributes)
    settings = cast(WorkspaceSettings, event)
    return ("settings", SETTINGS_ENTITY, ts, event.event_id, {
        "byok": settings.byok or False,
        "user_level_data": True if settings.user_level_data is None else settings.user_level_data,
    })  # fmt: skip
