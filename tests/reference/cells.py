"""Contract §5 value formats: every cell is produced here as its exact CSV text."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Context, Decimal

from tests.reference import money as money_rule

_EXACT = Context(prec=80, rounding=ROUND_HALF_EVEN)
_MICRO = Decimal("0.000001")
_CENT = Decimal("0.01")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def integer(value: int) -> str:
    return str(value)


def money(nano_dollars: int | None) -> str:
    """A sum of nano-dollars in USD: 6 decimals, plain notation, half-even (decision 12);
    ``None`` (undefined) is empty."""
    if nano_dollars is None:
        return ""
    value = money_rule.usd(nano_dollars)
    return format(value.quantize(_MICRO, rounding=ROUND_HALF_EVEN, context=_EXACT), "f")


def _two_decimals(value: Decimal) -> str:
    return format(value.quantize(_CENT, rounding=ROUND_HALF_EVEN, context=_EXACT), "f")


def ratio(numerator: Decimal | int, denominator: Decimal | int, scale: int = 1) -> str:
    """``numerator / denominator * scale`` to 2 decimals; empty over zero."""
    if denominator == 0:
        return ""
    exact = _EXACT.divide(_EXACT.multiply(Decimal(numerator), Decimal(scale)), Decimal(denominator))
    return _two_decimals(exact)


def optional_int(value: int | None) -> str:
    return "" if value is None else str(value)


def boolean(value: bool) -> str:
    return "true" if value else "false"


def json_counts(counts: Mapping[str, int]) -> str:
    """Compact JSON object, keys in ascending code-point order, UTF-8 unescaped."""
    return json.dumps(dict(sorted(counts.items())), separators=(",", ":"), ensure_ascii=False)


def guard(cell: str) -> str:
    """Prefix ``'`` to text a spreadsheet would run as a formula (applied to every cell)."""
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell
