"""Turn one Kafka record into a validated event, or a dead-letter reason.

Nothing here raises: every malformed input becomes a :class:`Rejected` with a reason
an operator can act on. Oversized values are rejected before parsing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from shared import codec
from shared.contracts.events import (
    EVENT_TYPES,
    ApiRequestEvent,
    MessageEvent,
    PaygConsumption,
    UsageEvent,
    epoch_ms,
    usage_event_adapter,
)
from shared.domain.facts import (
    Fact,
    fact_from_api_request,
    fact_from_message,
    fact_from_payg,
)
from shared.domain.window import day_start_ms, months_before, to_ms

#: A valid activity event, ready to fold: its workspace and its fact.
Activity = tuple[str, Fact]


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str  # short machine-friendly category, e.g. "invalid_json"
    detail: str  # the human explanation that goes into the `error` header

    @property
    def header(self) -> str:
        return f"{self.reason}: {self.detail}"[:1000]


@dataclass(frozen=True, slots=True)
class AcceptedRange:
    """Events must fall in ``[oldest_ms, newest_ms]`` to be ingested."""

    oldest_ms: int
    newest_ms: int

    @classmethod
    def at(
        cls,
        now: datetime,
        *,
        retention_months: int = 12,
        future_tolerance: timedelta = timedelta(hours=24),
    ) -> AcceptedRange:
        # 12 calendar months back from today's UTC date, minus one day so that a
        # 12-month export in any timezone (UTC+14 included) finds every event it may show.
        oldest_day = months_before(now.date(), retention_months) - timedelta(days=1)
        return cls(oldest_ms=day_start_ms(oldest_day), newest_ms=to_ms(now + future_tolerance))


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False)[:5]:
        location = ".".join(str(part) for part in item["loc"]) or "event"
        parts.append(f"{location}: {item['msg']}")
    return "; ".join(parts)


def to_fact(event: UsageEvent) -> Fact | None:
    """The fact of an activity event; None for dimension events."""
    if isinstance(event, MessageEvent):
        return fact_from_message(event)
    if isinstance(event, ApiRequestEvent):
        return fact_from_api_request(event)
    if isinstance(event, PaygConsumption):
        return fact_from_payg(event)
    return None


def read_record(
    value: bytes | None, accepted: AcceptedRange, *, max_bytes: int
) -> Activity | UsageEvent | Rejected:
    """What ingest needs of one record, by the contract's models: an activity's
    (workspace, fact), a dimension event, or why it is rejected. (Ingest's hot path is
    ``services.ingest.decode``, which hands here whatever it does not accept itself.)"""
    event = validate_record(value, accepted, max_bytes=max_bytes)
    if isinstance(event, Rejected):
        return event
    fact = to_fact(event)
    return event if fact is None else (event.org_id, fact)


def validate_record(
    value: bytes | None, accepted: AcceptedRange, *, max_bytes: int
) -> UsageEvent | Rejected:
    """The authority on validity: the contract's models, with a reason when rejected."""
    decoded = _decode(value, max_bytes)
    if isinstance(decoded, Rejected):
        return decoded
    return _validate(decoded, accepted)


def _decode(value: bytes | None, max_bytes: int) -> dict[str, Any] | Rejected:
    if value is None:
        return Rejected("empty_value", "the record has no value")
    if len(value) > max_bytes:
        return Rejected("oversized", f"value of {len(value)} bytes exceeds {max_bytes}")
    try:
        # orjson is strict JSON (no NaN, valid UTF-8 only); pydantic's parser is lenient.
        decoded = codec.loads(value)
    except codec.JSONDecodeError as exc:
        return Rejected("invalid_json", f"not valid UTF-8 JSON: {exc}")
    if type(decoded) is not dict:
        return Rejected("invalid_event", "the value must be a JSON object")
    return decoded


def _validate(decoded: dict[str, Any], accepted: AcceptedRange) -> UsageEvent | Rejected:
    try:
        event = usage_event_adapter.validate_python(decoded)
    except ValidationError as exc:
        return _rejection(exc)
    occurred = epoch_ms(event.occurred_at)
    if occurred < accepted.oldest_ms:
        return Rejected("too_old", "occurred_at is older than the 12-month retention")
    if occurred > accepted.newest_ms:
        return Rejected("too_far_in_future", "occurred_at is more than 24 h in the future")
    return event


def _rejection(error: ValidationError) -> Rejected:
    first = error.errors(include_url=False)[0]
    if first["type"] in {"union_tag_invalid", "union_tag_not_found"}:
        return Rejected("unknown_type", f"'type' must be one of {', '.join(EVENT_TYPES)}")
    return Rejected("invalid_event", _describe(error))
