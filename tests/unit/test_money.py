"""to_nano's digit-shifting fast path equals the Decimal definition of the money rule."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.domain.facts import to_nano


def by_decimal(amount: float) -> int:
    return 0 if amount == 0 else int(Decimal(repr(amount)).scaleb(9).to_integral_value())


@settings(max_examples=3000)
@given(
    st.one_of(
        st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12),
        st.integers(min_value=-(10**12), max_value=10**12),
        st.decimals(places=9, min_value=-1000, max_value=1000).map(float),
        st.sampled_from([1e-10, 5e-10, 1.5e-9, 2.5e-9, 0.0000000005, 1e21, -0.0, 0.1, 123.456]),
    )
)
def test_fast_path_equals_the_decimal_rule(amount: float) -> None:
    assert to_nano(amount) == by_decimal(amount)
