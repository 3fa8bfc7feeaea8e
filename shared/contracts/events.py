"""Usage events on ``usage.events`` (contract §2), as pydantic v2 models.

Unknown fields are ignored so producers can add fields without breaking us. Numbers are
strict (no numeric strings, no booleans for ints): a producer sending ``"12"`` tokens has
a bug we want to see in the dead-letter topic, not silently coerced.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    model_validator,
)

from shared.contracts.ids import EntityId, EventId

# Upper bounds: state is stored as 64-bit integers (money in nano-dollars), so every
# accepted event — and a day's sums of thousands of them — must fit. They are far above
# any real model call.
MAX_TOKENS = 10**9
MAX_REQUESTS = 10**6
MAX_USD = 10**6

Count = Annotated[int, Field(strict=True, ge=0, le=MAX_TOKENS)]
Requests = Annotated[int, Field(strict=True, ge=1, le=MAX_REQUESTS)]
Amount = Annotated[float, Field(strict=True, ge=0, le=MAX_USD, allow_inf_nan=False)]


# RFC 3339 §5.6 date-time in ASCII: "T" and "Z" in either case (§5.6's note), seconds
# required, a fraction of any length, an offset Z or ±hh:mm (hh ≤ 23, mm ≤ 59). Pydantic's
# own parser also reads +0530, a space for "T", hh:mm without seconds, a decimal comma and
# a Unix time in a string: the contract refuses those, so they are refused before it.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)


def _rfc3339_text(value: object) -> object:
    # Only text: a bare number would otherwise be read as a Unix time.
    if not isinstance(value, str) or _RFC3339.fullmatch(value) is None:
        raise ValueError(
            "must be an RFC 3339 date-time string with an offset, "
            "like 2026-01-15T09:30:00+01:00 or 2026-01-15T08:30:00Z"
        )
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=256)]
OptionalShortText = Annotated[str | None, StringConstraints(max_length=256)]
Text = Annotated[str, StringConstraints(max_length=4096)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


def _drop_nulls(value: object) -> object:
    """``null`` means the same as an absent field: its default, or "missing" if required."""
    if isinstance(value, dict):
        return {key: item for key, item in value.items() if item is not None}
    return value


class Usage(_Model):
    """Token and cost figures of one model call (all default to 0)."""

    _nulls_are_absent = model_validator(mode="before")(_drop_nulls)

    prompt_tokens: Count = 0
    completion_tokens: Count = 0
    cached_prompt_tokens: Count = 0
    cache_creation_tokens: Count = 0
    cost_usd: Amount = 0.0

    @model_validator(mode="after")
    def _cache_within_prompt(self) -> Usage:
        # prompt_tokens counts every input token, cache reads and writes included (§2).
        if self.cached_prompt_tokens + self.cache_creation_tokens > self.prompt_tokens:
            raise ValueError(
                "cached_prompt_tokens + cache_creation_tokens must not exceed prompt_tokens "
                "(prompt_tokens counts all input tokens)"
            )
        return self


class _EventBase(_Model):
    _nulls_are_absent = model_validator(mode="before")(_drop_nulls)

    event_id: EventId
    org_id: EntityId
    occurred_at: Timestamp


class _ModelCall(_EventBase):
    model: ShortText
    provider: ShortText
    byok: Annotated[bool, Field(strict=True)] = False
    deployment: OptionalShortText = None
    requests: Requests = 1
    usage: Usage = Usage()


class MessageEvent(_ModelCall):
    """One prompt a user sent, and the model work that served it."""

    type: Literal["message"]
    user_id: EntityId
    assistant_id: EntityId | None = None
    project_id: EntityId | None = None
    conversation_id: OptionalShortText = None
    source: ShortText = "WEB"
    actions: Annotated[list[ShortText], Field(max_length=256)] = []


class ApiRequestEvent(_ModelCall):
    """Calls made through the public API with an API key."""

    type: Literal["api_request"]
    api_key_id: EntityId
    source: ShortText = "API"


class _Upsert(_EventBase):
    deleted: Annotated[bool, Field(strict=True)] = False


# The upserts repeat a shape (id, name, owner) on purpose: each is its own wire format.
class UserUpserted(_Upsert):
    type: Literal["user_upserted"]
    user_id: EntityId
    name: Text = ""
    email: Text = ""
    role: Text = ""
    joined_at: date | datetime | None = None
    department: Text = ""
    company_name: Text = ""
    license_type: Text = ""
    payg_limit: Amount | None = None


class AgentUpserted(_Upsert):
    type: Literal["agent_upserted"]
    assistant_id: EntityId
    name: Text = ""
    description: Text = ""
    url: Text = ""
    owner_id: Text = ""
    owner_email: Text = ""


class ProjectUpserted(_Upsert):
    type: Literal["project_upserted"]
    project_id: EntityId
    name: Text = ""
    owner_id: Text = ""
    owner_email: Text = ""


class ApiKeyUpserted(_Upsert):
    type: Literal["api_key_upserted"]
    api_key_id: EntityId
    name: Text = ""


class PaygConsumption(_EventBase):
    """Extra-usage spent by a user at ``occurred_at``."""

    type: Literal["payg_consumption"]
    user_id: EntityId
    amount: Amount


class WorkspaceSettings(_EventBase):
    """The workspace's settings as of ``occurred_at`` (a full state: missing = default)."""

    type: Literal["workspace_settings"]
    byok: Annotated[bool, Field(strict=True)] = False
    user_level_data: Annotated[bool, Field(strict=True)] = True


UsageEvent = Annotated[
    MessageEvent
    | ApiRequestEvent
    | UserUpserted
    | AgentUpserted
    | ProjectUpserted
    | ApiKeyUpserted
    | PaygConsumption
    | WorkspaceSettings,
    Field(discriminator="type"),
]

EVENT_TYPES: tuple[str, ...] = (
    "message",
    "api_request",
    "user_upserted",
    "agent_upserted",
    "project_upserted",
    "api_key_upserted",
    "payg_consumption",
    "workspace_settings",
)

usage_event_adapter: TypeAdapter[UsageEvent] = TypeAdapter(UsageEvent)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the Unix epoch, exact (sub-millisecond digits are floored)."""
    return (moment - _EPOCH) // _MS
