"""The money rule of the contract, written out on its own (decision 12).

Each amount is converted on ingest to an exact integer number of nano-dollars, rounding
half to even; sums are exact; a money cell shows the sum rounded to 6 decimals, half to
even. So 700 amounts of 0.0000000035 USD are 700 x 4 nano = 0.000002800, shown as
``0.000003`` — not the exact 0.00000245 (``0.000002``).

The oracle keeps nano-dollars as integers, so no sum is ever rounded, however large,
and converts to a :class:`~decimal.Decimal` only for the cell.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_EVEN, Context, Decimal

NANO_PER_USD = 10**9
# Wide enough for any amount's decimal form (the rounding happens at the nano-dollar
# digit, never earlier).
_WIDE = Context(prec=1000, rounding=ROUND_HALF_EVEN)


def nano(amount: Decimal | int) -> int:
    """The amount (USD, its exact value) in whole nano-dollars, half to even."""
    scaled = _WIDE.multiply(Decimal(amount), Decimal(NANO_PER_USD))
    return int(scaled.to_integral_value(rounding=ROUND_HALF_EVEN, context=_WIDE))


def total(amounts: Iterable[int]) -> int:
    """The exact sum of nano-dollar amounts (a Python int never overflows or rounds)."""
    return sum(amounts, 0)


def usd(nano_dollars: int) -> Decimal:
    """Nano-dollars as an exact Decimal number of USD (for the cell's final rounding)."""
    return _WIDE.multiply(Decimal(nano_dollars), Decimal("1e-9"))
