"""Contract §5 value formats: every cell becomes its exact CSV text here.

JSON cells are byte for byte what the standard library encoder writes
(``ensure_ascii=False``, compact separators, sorted keys): its escaping is fixed by the
language and is what downstream tools and our test oracle expect.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Final

import orjson

from shared.domain.facts import nano_to_decimal

# Wide enough that no product or quotient of our figures is ever rounded before the end.
_EXACT: Final = Context(prec=80, rounding=ROUND_HALF_EVEN)
_MICRO: Final = Decimal("0.000001")
_CENT: Final = Decimal("0.01")
FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


def integer(value: int) -> str:
    return str(value)


def optional_integer(value: int | None) -> str:
    """A min/max that may be undefined (no events): empty then."""
    return "" if value is None else str(value)


def money(nano: int | None) -> str:
    """Pico-dollars as USD with 6 decimals, plain notation, half-even; None is empty."""
    if nano is None:
        return ""
    rounded = nano_to_decimal(nano).quantize(_MICRO, rounding=ROUND_HALF_EVEN, context=_EXACT)
    return format(rounded, "f")


def ratio(numerator: int, denominator: int, *, scale: int = 1) -> str:
    """``numerator / denominator * scale`` with 2 decimals; empty when the denominator is 0."""
    if denominator == 0:
        return ""
    exact = _EXACT.divide(_EXACT.multiply(Decimal(numerator), Decimal(scale)), Decimal(denominator))
    return format(exact.quantize(_CENT, rounding=ROUND_HALF_EVEN, context=_EXACT), "f")


def boolean(value: bool) -> str:
    return "true" if value else "false"


def json_counts(counts: Mapping[str, int]) -> str:
    """Compact JSON object, keys in ascending code-point order, UTF-8 unescaped; ``{}``.

    orjson writes exactly what the standard encoder writes for a str -> int mapping (keys
    sorted by UTF-8 bytes, which is code-point order; the same escapes), 17 times
    faster, which matters at four such cells per row; beyond 64-bit integers, which it
    refuses, the standard encoder answers.
    """
    try:
        return orjson.dumps(counts, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return json.dumps(dict(sorted(counts.items())), separators=(",", ":"), ensure_ascii=False)


def guard(cell: str) -> str:
    """Prefix ``'`` to a cell a spreadsheet would run as a formula."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell
