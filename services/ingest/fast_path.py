"""The hot path of validation: facts straight from decoded JSON for well-formed activity.

Activity events (``message``, ``api_request``, ``payg_consumption``) are nearly all of
the traffic. Building a pydantic model per event and then a fact from it costs more than
everything else ingest does to an event, so this module checks the contract's rules for
those types by hand, on the dict orjson produced, and builds the fact directly.

It is deliberately conservative: anything it is not sure of (another type, a
timestamp in any but the plain RFC 3339 form, a rule broken) returns ``None``, and the
caller takes the pydantic path, which stays the one authority on what is valid and why
not. So this module may only ever accept a subset of what the models accept, producing
exactly the fact they would: ``tests/unit/test_fast_path.py`` checks both with
Hypothesis against the models.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from shared.contracts.events import MAX_REQUESTS, MAX_TOKENS, MAX_USD
from shared.contracts.ids import is_valid_event_id, is_valid_id
from shared.domain.facts import API_REQUEST, MESSAGE, PAYG, Fact, to_nano

_TIMESTAMP: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})", re.ASCII
)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)
_MAX_TEXT: Final = 256
_MAX_ACTIONS: Final = 256


class _NotFast(Exception):
    """The event needs the full models: valid or not, they decide."""


def activity_fact(decoded: dict[str, Any]) -> tuple[str, Fact] | None:
    """``(org_id, fact)`` for a valid activity event; None to fall back to the models."""
    kind = decoded.get("type")
    build = _BUILDERS.get(kind) if type(kind) is str else None  # a list is not hashable
    if build is None:
        return None
    try:
        return decoded["org_id"], build(decoded)
    except (_NotFast, KeyError, TypeError):
        return None


def _common(event: dict[str, Any]) -> tuple[str, int]:
    if not is_valid_id(event.get("org_id")):
        raise _NotFast
    event_id = event.get("event_id")
    if not is_valid_event_id(event_id):
        raise _NotFast
    return event_id, _epoch_ms(event.get("occurred_at"))  # type: ignore[return-value]


def _epoch_ms(value: object) -> int:
    if type(value) is not str or _TIMESTAMP.fullmatch(value) is None:
        raise _NotFast
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _NotFast from None
    return (moment - _EPOCH) // _MS


def _text(value: object, default: str | None = None) -> str:
    """A required short text (1-256 characters); ``None`` means absent."""
    if value is None and default is not None:
        return default
    if type(value) is not str or not 0 < len(value) <= _MAX_TEXT:
        raise _NotFast
    return value


def _optional_text(value: object) -> str | None:
    if value is None:
        return None
    if type(value) is not str or len(value) > _MAX_TEXT:
        raise _NotFast
    return value


def _optional_id(value: object) -> str | None:
    return None if value is None else _id(value)


def _bool(value: object) -> bool:
    if value is None:
        return False
    if value is not True and value is not False:
        raise _NotFast
    return value


def _int(value: object, low: int, high: int, default: int) -> int:
    if value is None:
        return default
    if type(value) is not int or not low <= value <= high:
        raise _NotFast
    return value


def _cost_nano(value: object) -> int:
    if value is None:
        return 0
    if (type(value) is float or type(value) is int) and 0 <= value <= MAX_USD:
        if not math.isfinite(value):  # pragma: no cover - orjson never decodes inf or NaN
            raise _NotFast
        return to_nano(float(value))
    raise _NotFast


def _usage(value: object) -> tuple[int, int, int, int, int]:
    if value is None:
        return 0, 0, 0, 0, 0
    if type(value) is not dict:
        raise _NotFast
    get = value.get
    prompt = _int(get("prompt_tokens"), 0, MAX_TOKENS, 0)
    completion = _int(get("completion_tokens"), 0, MAX_TOKENS, 0)
    cached = _int(get("cached_prompt_tokens"), 0, MAX_TOKENS, 0)
    creation = _int(get("cache_creation_tokens"), 0, MAX_TOKENS, 0)
    if cached + creation > prompt:
        raise _NotFast
    return prompt, completion, cached, creation, _cost_nano(value.get("cost_usd"))


def _actions(value: object) -> list[str]:
    if value is None:
        return []
    if type(value) is not list or len(value) > _MAX_ACTIONS:
        raise _NotFast
    for action in value:
        _text(action)
    return sorted(set(value))


def _id(value: object) -> str:
    if not is_valid_id(value):
        raise _NotFast
    return value  # type: ignore[return-value]  # is_valid_id checked it is a str


def _call(event: dict[str, Any], default_source: str) -> tuple[str, str, bool, str, str]:
    """model, provider, byok, deployment, source: what every model call carries."""
    return (
        _text(event.get("model")),
        _text(event.get("provider")),
        _bool(event.get("byok")),
        _optional_text(event.get("deployment")) or "",
        _text(event.get("source"), default_source).upper(),
    )


def _work(event: dict[str, Any]) -> tuple[int, int, int, int, int, int]:
    """requests, then the usage figures."""
    return _int(event.get("requests"), 1, MAX_REQUESTS, 1), *_usage(event.get("usage"))


def _message(event: dict[str, Any]) -> Fact:
    event_id, ts = _common(event)
    return (
        MESSAGE,
        event_id,
        ts,
        _id(event.get("user_id")),
        _optional_id(event.get("assistant_id")),
        _optional_id(event.get("project_id")),
        _optional_text(event.get("conversation_id")),
        *_call(event, "WEB"),
        _actions(event.get("actions")),
        *_work(event),
    )


def _api_request(event: dict[str, Any]) -> Fact:
    event_id, ts = _common(event)
    return (
        API_REQUEST,
        event_id,
        ts,
        _id(event.get("api_key_id")),
        *_call(event, "API"),
        *_work(event),
    )


def _payg(event: dict[str, Any]) -> Fact:
    event_id, ts = _common(event)
    amount = event.get("amount")
    if amount is None:
        raise _NotFast
    return (PAYG, event_id, ts, _id(event.get("user_id")), _cost_nano(amount))


_BUILDERS: Final[dict[str, Callable[[dict[str, Any]], Fact]]] = {
    "message": _message,
    "api_request": _api_request,
    "payg_consumption": _payg,
}
