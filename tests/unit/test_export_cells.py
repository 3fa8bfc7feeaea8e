"""Contract §5 value formats and the spreadsheet-formula guard."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.export import cells
from shared.domain.facts import NANO


@pytest.mark.parametrize(
    ("nano", "text"),
    [
        (0, "0.000000"),
        (NANO, "1.000000"),
        (1_234_567_500, "1.234568"),  # ...7.5 micro-dollars: half-even rounds up to 8
        (1_234_566_500, "1.234566"),  # ...6.5: half-even keeps the even 6
        (1_234_566_501, "1.234567"),  # just above the half
        (123, "0.000000"),
        (10**27, "1000000000000000000.000000"),  # plain notation, never 1E+18
        (None, ""),
    ],
)
def test_money_has_six_decimals_half_even(nano: int | None, text: str) -> None:
    assert cells.money(nano) == text


@pytest.mark.parametrize(
    ("numerator", "denominator", "scale", "text"),
    [
        (5, 2, 1, "2.50"),
        (1, 3, 1, "0.33"),
        (2, 3, 1, "0.67"),
        (1, 8, 1, "0.12"),  # 0.125: half-even
        (3, 8, 1, "0.38"),  # 0.375: half-even
        (1, 0, 1, ""),  # a ratio over zero is undefined
        (25 * NANO, 100 * NANO, 100, "25.00"),
        (0, 7, 100, "0.00"),
    ],
)
def test_ratio_has_two_decimals(numerator: int, denominator: int, scale: int, text: str) -> None:
    assert cells.ratio(numerator, denominator, scale=scale) == text


def test_json_counts_are_compact_sorted_by_code_point_and_utf8() -> None:
    assert cells.json_counts({}) == "{}"
    assert cells.json_counts({"b": 2, "a": 1, "Z": 3, "é": 4}) == '{"Z":3,"a":1,"b":2,"é":4}'
    assert cells.json_counts({'say "hi"': 1}) == '{"say \\"hi\\"":1}'


@given(st.dictionaries(st.text(), st.integers(min_value=-(2**70), max_value=2**70), max_size=6))
def test_json_counts_are_what_the_standard_encoder_writes(counts: dict[str, int]) -> None:
    standard = json.dumps(dict(sorted(counts.items())), separators=(",", ":"), ensure_ascii=False)
    assert cells.json_counts(counts) == standard


def test_booleans_and_optional_integers() -> None:
    assert (cells.boolean(True), cells.boolean(False)) == ("true", "false")
    assert (cells.optional_integer(None), cells.optional_integer(0)) == ("", "0")


@pytest.mark.parametrize("dangerous", ["=SUM(A1)", "+49", "-Dash", "@mention", "\tTab", "\rCR"])
def test_formula_guard_prefixes_a_quote(dangerous: str) -> None:
    assert cells.guard(dangerous) == "'" + dangerous


@pytest.mark.parametrize("harmless", ["", "Anna", "a=b", " =x", "'quoted", "12", "{}"])
def test_formula_guard_leaves_other_cells_alone(harmless: str) -> None:
    assert cells.guard(harmless) == harmless
