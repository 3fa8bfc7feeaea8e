"""Identifier rules of the contract (§2, §3).

ASCII only, so look-alike unicode never passes. Beyond the contract's pattern we also
refuse ``..`` anywhere in an id: ids become object-key segments, and an operator should
never have to wonder whether a key can climb out of its prefix.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema

_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}", re.ASCII)
_EVENT_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}", re.ASCII)

ID_RULE = "1-128 characters of [A-Za-z0-9_.:-], starting with a letter or digit, no '..'"
EVENT_ID_RULE = "1-128 characters of [A-Za-z0-9._:-]"


def is_valid_id(value: object) -> bool:
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None and ".." not in value


def is_valid_event_id(value: object) -> bool:
    return isinstance(value, str) and _EVENT_ID_RE.fullmatch(value) is not None


def _check_id(value: str) -> str:
    if not is_valid_id(value):
        raise ValueError(f"must be {ID_RULE}")
    return value


def _check_event_id(value: str) -> str:
    if not is_valid_event_id(value):
        raise ValueError(f"must be {EVENT_ID_RULE}")
    return value


# The schema states the pattern (JSON Schema cannot say "no '..'": the description does).
EntityId = Annotated[
    str,
    AfterValidator(_check_id),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$",
            "description": f"{ID_RULE}",
        }
    ),
]
EventId = Annotated[
    str,
    AfterValidator(_check_event_id),
    WithJsonSchema(
        {"type": "string", "pattern": r"^[A-Za-z0-9._:-]{1,128}$", "description": EVENT_ID_RULE}
    ),
]
