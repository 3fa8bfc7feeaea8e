"""JSON encoding behind one module with fixed options (orjson)."""

from __future__ import annotations

from typing import Any

import orjson

JSONDecodeError = orjson.JSONDecodeError

_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON; dict keys in insertion order."""
    return orjson.dumps(value, option=_OPTIONS)


def dumps_sorted(value: Any) -> bytes:
    """Compact UTF-8 JSON with sorted keys: for bytes that must be reproducible."""
    return orjson.dumps(value, option=_OPTIONS | orjson.OPT_SORT_KEYS)


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON; raises :data:`JSONDecodeError` (a ``ValueError``) on bad input."""
    return orjson.loads(data)
