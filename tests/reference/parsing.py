"""Contract §2 validity, written out rule by rule, and the normalised records it yields.

A raw event is either the bytes of a Kafka message value or an already-parsed dict.
:func:`parse_event` answers either a normalised record or the reason it is invalid;
the reference ignores invalid events exactly as ingest sends them to the DLQ.

Types are checked on the value as ``shared.codec`` (orjson) parses it, because that is
what "valid JSON" means for ingest. A JSON number is read as the nearest IEEE-754 double,
as JSON parsers do, and money is that double's shortest decimal form, converted to whole
nano-dollars by the contract's money rule (:mod:`tests.reference.money`).

Text limits are the contract's too (decision 4): ids and short texts (``model``,
``provider``, ``source``, ``deployment``, ``conversation_id``, each action) at most 256
characters, other texts at most 4096, at most 256 actions; ``source``, ``model``,
``provider`` and every action non-empty.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from shared import codec
from tests.reference import money

MAX_EVENT_BYTES = 1024 * 1024

_EVENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}", re.ASCII)
_ENTITY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}", re.ASCII)
_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)

EVENT_TYPES = frozenset(
    {
        "message",
        "api_request",
        "user_upserted",
        "agent_upserted",
        "project_upserted",
        "api_key_upserted",
        "payg_consumption",
        "workspace_settings",
    }
)
UPSERT_ID_FIELD = {
    "user_upserted": "user_id",
    "agent_upserted": "assistant_id",
    "project_upserted": "project_id",
    "api_key_upserted": "api_key_id",
}
UPSERT_TEXT_FIELDS = {
    "user_upserted": ("name", "email", "role", "department", "company_name", "license_type"),
    "agent_upserted": ("name", "description", "url", "owner_id", "owner_email"),
    "project_upserted": ("name", "owner_id", "owner_email"),
    "api_key_upserted": ("name",),
}


class Invalid(Exception):
    """The event breaks a rule of contract §2; the message says which."""


@dataclass(frozen=True, slots=True)
class Call:
    """A ``message`` or ``api_request`` event, normalised (defaults applied)."""

    type: str
    event_id: str
    org_id: str
    at: datetime
    owner: str  # user_id of a message, api_key_id of an api_request
    assistant_id: str | None
    project_id: str | None
    conversation_id: str | None
    model: str
    provider: str
    byok: bool
    deployment: str
    source: str
    actions: frozenset[str]
    requests: int
    prompt: int
    completion: int
    cached: int
    creation: int
    cost_nano: int


@dataclass(frozen=True, slots=True)
class Payg:
    event_id: str
    org_id: str
    at: datetime
    user_id: str
    amount_nano: int


@dataclass(frozen=True, slots=True)
class Upsert:
    """An entity's full attribute set as of ``at`` (texts default to ``""``)."""

    type: str
    event_id: str
    org_id: str
    at: datetime
    entity_id: str
    deleted: bool
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Settings:
    event_id: str
    org_id: str
    at: datetime
    byok: bool
    user_level_data: bool


Record = Call | Payg | Upsert | Settings


def twelve_months_before(moment: datetime) -> datetime:
    """The same instant one calendar year earlier (29 February maps to 28 February)."""
    try:
        return moment.replace(year=moment.year - 1)
    except ValueError:
        return moment.replace(year=moment.year - 1, day=28)


def oldest_accepted(valid_at: datetime) -> datetime:
    """Ingest keeps events from the start of the UTC day one year (and one day) before the
    ingest date, so a 12-month export in any timezone (UTC+14 too) finds all its events."""
    day = twelve_months_before(datetime.combine(valid_at.astimezone(UTC).date(), time(0)))
    return (day - timedelta(days=1)).replace(tzinfo=UTC)


def parse_timestamp(value: object) -> datetime:
    """RFC 3339 date-time with offset, as an aware UTC datetime (sub-µs digits dropped)."""
    if not isinstance(value, str):
        raise Invalid("occurred_at must be a string")
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise Invalid("occurred_at must be an RFC 3339 date-time with offset")
    day, clock, fraction, offset = match.groups()
    if offset not in ("Z", "z") and (int(offset[1:3]) > 23 or int(offset[4:]) > 59):
        # RFC 3339's time-numoffset: hours 00-23, minutes 00-59 (fromisoformat reads +00:60)
        raise Invalid("occurred_at has an offset out of range")
    micros = (fraction or "")[:6].ljust(6, "0")
    offset = "+00:00" if offset in ("Z", "z") else offset
    try:
        moment = datetime.fromisoformat(f"{day}T{clock}.{micros}{offset}")
    except ValueError as exc:
        raise Invalid(f"occurred_at is not a real date-time: {exc}") from None
    return moment.astimezone(UTC)


def _get(event: dict[str, Any], name: str) -> Any:
    """Absent and ``null`` are the same for every optional field (decision 3)."""
    return event.get(name)


def _entity_id(event: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = _get(event, name)
    if value is None:
        if required:
            raise Invalid(f"{name} is required")
        return None
    if not isinstance(value, str) or _ENTITY_ID.fullmatch(value) is None or ".." in value:
        raise Invalid(f"{name} is not a valid id")
    return value


# Text limits (decision 4), in characters (code points), as the contract sets them.
MAX_SHORT_TEXT = 256  # model, provider, source, deployment, conversation_id, an action
MAX_TEXT = 4096  # the texts of upserts (name, email, description, url, ...)
MAX_ACTIONS = 256


def _within(name: str, value: str, limit: int) -> str:
    if len(value) > limit:
        raise Invalid(f"{name} is longer than {limit} characters")
    return value


def _required_text(event: dict[str, Any], name: str) -> str:
    """A non-empty short text that must be present (``model``, ``provider``: no default)."""
    value = _text(event, name, limit=MAX_SHORT_TEXT)
    if not value:
        raise Invalid(f"{name} is required")
    return value


def _text(event: dict[str, Any], name: str, default: str = "", *, limit: int = MAX_TEXT) -> str:
    value = _get(event, name)
    if value is None:
        return default
    if not isinstance(value, str):
        raise Invalid(f"{name} must be a string")
    return _within(name, value, limit)


def _source(event: dict[str, Any], default: str) -> str:
    """``source``: a non-empty short text when given (absent or null: the default)."""
    value = _text(event, "source", default, limit=MAX_SHORT_TEXT)
    if not value:
        raise Invalid("source must not be empty")
    return value.upper()


def _optional_text(event: dict[str, Any], name: str) -> str | None:
    """A short text or null (``deployment``, ``conversation_id``); empty is allowed."""
    value = _get(event, name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Invalid(f"{name} must be a string or null")
    return _within(name, value, MAX_SHORT_TEXT)


def _actions(event: dict[str, Any]) -> frozenset[str]:
    """A message's ``actions``: at most 256 names, each a non-empty short text."""
    value = _get(event, "actions")
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise Invalid("actions must be a list of strings")
    if len(value) > MAX_ACTIONS:
        raise Invalid(f"actions holds more than {MAX_ACTIONS} items")
    for action in value:
        if not action:
            raise Invalid("an action must not be empty")
        _within("an action", action, MAX_SHORT_TEXT)
    return frozenset(value)


def _bool(event: dict[str, Any], name: str, default: bool) -> bool:
    value = _get(event, name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise Invalid(f"{name} must be a boolean")
    return value


# Upper bounds (decision 4): every accepted event, and a day's sums of many, must be
# storable as 64-bit integers.
MAX_TOKENS = 10**9
MAX_REQUESTS = 10**6
MAX_USD = 10**6


def _int(
    mapping: dict[str, Any], name: str, default: int, minimum: int, maximum: int = MAX_TOKENS
) -> int:
    value = mapping.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"{name} must be an integer")
    if value < minimum:
        raise Invalid(f"{name} must be >= {minimum}")
    if value > maximum:
        raise Invalid(f"{name} must be <= {maximum}")
    return value


def _money(mapping: dict[str, Any], name: str) -> int | None:
    """A number >= 0 in whole nano-dollars (decision 12): the shortest decimal form of the
    number as read (a double), rounded half to even."""
    value = mapping.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(f"{name} must be a number")
    if not math.isfinite(value) or value < 0:
        raise Invalid(f"{name} must be a finite number >= 0")
    if value > MAX_USD:
        raise Invalid(f"{name} must be <= {MAX_USD}")
    return money.nano(Decimal(repr(value)) if isinstance(value, float) else Decimal(value))


def _usage(event: dict[str, Any]) -> tuple[int, int, int, int]:
    usage = _get(event, "usage")
    if usage is None:
        usage = {}
    if not isinstance(usage, dict):
        raise Invalid("usage must be an object")
    prompt = _int(usage, "prompt_tokens", 0, 0)
    completion = _int(usage, "completion_tokens", 0, 0)
    cached = _int(usage, "cached_prompt_tokens", 0, 0)
    creation = _int(usage, "cache_creation_tokens", 0, 0)
    if cached + creation > prompt:
        raise Invalid("cached_prompt_tokens + cache_creation_tokens exceed prompt_tokens")
    return prompt, completion, cached, creation


def _call(event: dict[str, Any], head: dict[str, Any]) -> Call:
    is_message = head["type"] == "message"
    owner = _entity_id(event, "user_id" if is_message else "api_key_id", required=True)
    prompt, completion, cached, creation = _usage(event)
    usage = _get(event, "usage") or {}
    cost = _money(usage, "cost_usd") or 0
    return Call(
        owner=owner or "",
        assistant_id=_entity_id(event, "assistant_id", required=False) if is_message else None,
        project_id=_entity_id(event, "project_id", required=False) if is_message else None,
        conversation_id=_optional_text(event, "conversation_id") if is_message else None,
        model=_required_text(event, "model"),
        provider=_required_text(event, "provider"),
        byok=_bool(event, "byok", False),
        deployment=_optional_text(event, "deployment") or "",
        source=_source(event, "WEB" if is_message else "API"),
        actions=_actions(event) if is_message else frozenset(),
        requests=_int(event, "requests", 1, 1, MAX_REQUESTS),
        prompt=prompt,
        completion=completion,
        cached=cached,
        creation=creation,
        cost_nano=cost,
        **head,
    )


def _joined_at(event: dict[str, Any]) -> str:
    """``joined_at`` as ``YYYY-MM-DD``: the date part as written, no time-zone conversion."""
    value = _get(event, "joined_at")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Invalid("joined_at must be a date or date-time string")
    try:
        if _DATE.fullmatch(value):
            return date.fromisoformat(value).isoformat()
        return datetime.fromisoformat(value.replace("Z", "+00:00")).date().isoformat()
    except ValueError:
        raise Invalid("joined_at is not a date or date-time") from None


def _upsert(event: dict[str, Any], head: dict[str, Any]) -> Upsert:
    kind = head["type"]
    entity_id = _entity_id(event, UPSERT_ID_FIELD[kind], required=True)
    attrs: dict[str, Any] = {name: _text(event, name) for name in UPSERT_TEXT_FIELDS[kind]}
    if kind == "user_upserted":
        attrs["joined_at"] = _joined_at(event)
        attrs["payg_limit"] = _money(event, "payg_limit")
    return Upsert(
        entity_id=entity_id or "", deleted=_bool(event, "deleted", False), attrs=attrs, **head
    )


def _payg(event: dict[str, Any], head: dict[str, Any]) -> Payg:
    user_id = _entity_id(event, "user_id", required=True)
    amount = _money(event, "amount")
    if amount is None:
        raise Invalid("amount is required")
    del head["type"]
    return Payg(user_id=user_id or "", amount_nano=amount, **head)


def _settings(event: dict[str, Any], head: dict[str, Any]) -> Settings:
    del head["type"]
    return Settings(
        byok=_bool(event, "byok", False),
        user_level_data=_bool(event, "user_level_data", True),
        **head,
    )


def _decode(raw: bytes | dict[str, Any]) -> dict[str, Any]:
    if isinstance(raw, dict):
        if len(codec.dumps(raw)) > MAX_EVENT_BYTES:
            raise Invalid("event larger than 1 MiB")
        return raw
    if len(raw) > MAX_EVENT_BYTES:
        raise Invalid("event larger than 1 MiB")
    try:
        value = codec.loads(raw)
    except codec.JSONDecodeError:
        raise Invalid("not valid JSON") from None
    if not isinstance(value, dict):
        raise Invalid("not a JSON object")
    return value


def parse_event(raw: bytes | dict[str, Any], *, valid_at: datetime) -> Record:
    """The normalised record of one raw event; raises :class:`Invalid` when §2 rejects it.

    ``valid_at`` is the instant the 12-month / 24-hour rule is judged against (ingest time).
    """
    event = _decode(raw)
    event_id = event.get("event_id")
    if not isinstance(event_id, str) or _EVENT_ID.fullmatch(event_id) is None:
        raise Invalid("event_id is missing or not 1-128 chars of [A-Za-z0-9._:-]")
    kind = event.get("type")
    if not isinstance(kind, str) or kind not in EVENT_TYPES:  # a list or object is no type
        raise Invalid("unknown type")
    org_id = _entity_id(event, "org_id", required=True)
    at = parse_timestamp(event.get("occurred_at"))
    if at < oldest_accepted(valid_at):
        raise Invalid("occurred_at older than 12 months")
    if at > valid_at + timedelta(hours=24):
        raise Invalid("occurred_at more than 24 h in the future")
    head: dict[str, Any] = {"type": kind, "event_id": event_id, "org_id": org_id, "at": at}
    if kind in ("message", "api_request"):
        return _call(event, head)
    if kind in UPSERT_ID_FIELD:
        return _upsert(event, head)
    if kind == "payg_consumption":
        return _payg(event, head)
    return _settings(event, head)
