"""Destination names of an export request (contract §3, ``destination``).

A destination is configured on the exporter only (``USAGE_DESTINATION_<NAME>_*``,
``shared.destinations``): a request and a schedule carry its name, never an endpoint,
a bucket or a credential. Names are lowercase so that one environment variable spelling
(upper case) maps to exactly one name.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

from pydantic import AfterValidator, WithJsonSchema

_NAME_RE: Final = re.compile(r"[a-z0-9][a-z0-9_]{0,62}", re.ASCII)
DESTINATION_RULE: Final = "1-63 characters of [a-z0-9_], starting with a letter or digit"


def is_destination_name(value: object) -> bool:
    return isinstance(value, str) and _NAME_RE.fullmatch(value) is not None


def _check(value: str) -> str:
    if not is_destination_name(value):
        raise ValueError(f"must be {DESTINATION_RULE}")
    return value


DestinationName = Annotated[
    str,
    AfterValidator(_check),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^[a-z0-9][a-z0-9_]{0,62}$",
            "description": f"a destination the exporter has configured ({DESTINATION_RULE})",
        }
    ),
]
