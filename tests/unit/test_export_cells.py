"""Contract §5 value formats (the SQL macros of ``shared/columnar/queries/cells.sql``),
the spreadsheet-formula guard and RFC 4180 quoting (``files.csv_bytes``)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.columnar.queries.engine import connect
from shared.columnar.queries.files import csv_bytes
from shared.columnar.schema import DIMENSIONS, FACTS
from shared.domain.facts import NANO
from tests.reference import cells as reference

INT64 = st.integers(min_value=0, max_value=2**63 - 1)
#: The formula guard's characters, CSV quoting, controls, non-ASCII beyond the BMP.
TRICKY = 'ab=+-@\t\r\n,"\\ é\x00\x0b\x1f\x7f\u2028😀'


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = connect(FACTS.empty_table(), DIMENSIONS.empty_table())
    yield connection
    connection.close()


def scalar(con: duckdb.DuckDBPyConnection, expression: str) -> str | None:
    found = con.execute(f"SELECT {expression}").fetchone()
    assert found is not None
    return None if found[0] is None else str(found[0])


def money(con: duckdb.DuckDBPyConnection, nano: int | None) -> str | None:
    return scalar(con, "money(NULL)" if nano is None else f"money(CAST('{nano}' AS HUGEINT))")


@pytest.mark.parametrize(
    ("nano", "text"),
    [
        (0, "0.000000"),
        (NANO, "1.000000"),
        (1_234_567_500, "1.234568"),  # ...7.5 micro-dollars: half-even rounds up to 8
        (1_234_566_500, "1.234566"),  # ...6.5: half-even keeps the even 6
        (1_234_566_501, "1.234567"),  # just above the half
        (123, "0.000000"),
        (-123, "-0.000000"),  # a negative value keeps its sign, as Decimal does
        (10**27, "1000000000000000000.000000"),  # plain notation, never 1E+18
        (None, None),  # no value: an empty cell
    ],
)
def test_money_has_six_decimals_half_even(
    con: duckdb.DuckDBPyConnection, nano: int | None, text: str | None
) -> None:
    assert money(con, nano) == text


@settings(deadline=None)  # a shared machine: no per-example time limit
@given(nano=st.integers(min_value=-(2**100), max_value=2**100))
def test_money_is_the_oracles(con: duckdb.DuckDBPyConnection, nano: int) -> None:
    assert money(con, nano) == reference.money(nano)


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
def test_ratio_has_two_decimals(
    con: duckdb.DuckDBPyConnection, numerator: int, denominator: int, scale: int, text: str
) -> None:
    assert scalar(con, f"ratio({numerator}, {denominator}, {scale})") == text


@settings(deadline=None)  # a shared machine: no per-example time limit
@given(numerator=INT64, denominator=INT64, scale=st.sampled_from([1, 100]))
def test_ratio_is_the_oracles(
    con: duckdb.DuckDBPyConnection, numerator: int, denominator: int, scale: int
) -> None:
    expected = reference.ratio(numerator, denominator, scale)
    assert scalar(con, f"ratio({numerator}, {denominator}, {scale})") == expected


def json_counts(con: duckdb.DuckDBPyConnection, counts: dict[str, int]) -> str | None:
    table = pa.table(
        {"key": pa.array(list(counts), pa.string()), "n": pa.array(counts.values(), pa.int64())}
    )
    cursor = con.cursor()
    try:
        cursor.register("counts", table)
        found = cursor.execute("SELECT json_counts(key, n) FROM counts").fetchone()
    finally:
        cursor.close()
    assert found is not None
    return str(found[0])


def test_json_counts_are_compact_sorted_by_code_point_and_utf8(
    con: duckdb.DuckDBPyConnection,
) -> None:
    assert json_counts(con, {}) == "{}"
    assert json_counts(con, {"b": 2, "a": 1, "Z": 3, "é": 4}) == '{"Z":3,"a":1,"b":2,"é":4}'
    assert json_counts(con, {'say "hi"': 1}) == '{"say \\"hi\\"":1}'
    assert json_counts(con, {"\x00\x0b\x1f\x7f\u2028😀": 1}) == (
        '{"\\u0000\\u000b\\u001f\x7f\u2028😀":1}'
    )


@settings(deadline=None)  # a shared machine: no per-example time limit
@given(st.dictionaries(st.text(), INT64, max_size=6))
def test_json_counts_are_what_the_standard_encoder_writes(
    con: duckdb.DuckDBPyConnection, counts: dict[str, int]
) -> None:
    standard = json.dumps(dict(sorted(counts.items())), separators=(",", ":"), ensure_ascii=False)
    assert json_counts(con, counts) == standard


def test_booleans(con: duckdb.DuckDBPyConnection) -> None:
    assert (scalar(con, "bool_text(true)"), scalar(con, "bool_text(false)")) == ("true", "false")


def line_of(cell: str | None) -> bytes:
    """The CSV line of a one-column row holding ``cell`` (None: NULL), without its CRLF."""
    data = csv_bytes(pa.table({"c": pa.array([cell], pa.string())}), ["c"], group_by=None, fixed={})
    assert data.startswith(b"c\r\n")
    assert data.endswith(b"\r\n")
    return data[3:-2]


@pytest.mark.parametrize("dangerous", ["=SUM(A1)", "+49", "-Dash", "@mention", "\tTab", "\rCR"])
def test_formula_guard_prefixes_a_quote(dangerous: str) -> None:
    guarded = "'" + dangerous
    expected = f'"{guarded}"' if "\r" in guarded else guarded
    assert line_of(dangerous) == expected.encode()


@pytest.mark.parametrize("harmless", ["", "Anna", "a=b", " =x", "'quoted", "12", "{}"])
def test_formula_guard_leaves_other_cells_alone(harmless: str) -> None:
    assert line_of(harmless) == harmless.encode()


def test_null_is_an_empty_cell() -> None:
    assert line_of(None) == b""


@settings(deadline=None)  # a shared machine: no per-example time limit
@given(st.lists(st.text(alphabet=TRICKY), min_size=2, max_size=5))
def test_lines_are_what_the_csv_module_writes(cells: list[str]) -> None:
    """Excel dialect: quoted only when needed, quotes doubled, CRLF; the guard first.
    (Every export has several columns: the ``csv`` module writes a row of one empty
    cell as ``""``, which this writer, never given one, does not.)"""
    names = [f"c{index}" for index in range(len(cells))]
    result = pa.table(
        {name: pa.array([cell], pa.string()) for name, cell in zip(names, cells, strict=True)}
    )
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(names)
    writer.writerow([reference.guard(cell) for cell in cells])
    expected = buffer.getvalue().encode("utf-8")
    assert csv_bytes(result, names, group_by=None, fixed={}) == expected
