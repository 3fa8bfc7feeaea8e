-- Macros shared by the export queries: contract §5's cell formats
-- (tests/unit/test_export_cells.py) and "as of the window's end"
-- (shared/domain/dimensions.py::as_of). Money is integer nano-dollars and every figure an
-- exact integer (sums are HUGEINT): rounding happens once, here, half-even.

-- n / d rounded half-even, for n >= 0 and d > 0 (integer division, no floating point).
CREATE OR REPLACE MACRO half_even_div(n, d) AS
    n // d + CASE WHEN 2 * (n % d) > d OR (2 * (n % d) = d AND (n // d) % 2 = 1) THEN 1 ELSE 0 END;

-- A non-negative count of 10^-places units as plain decimal text: 1234567, 6 -> 1.234567.
CREATE OR REPLACE MACRO fixed(units, places) AS
    CAST(units // CAST(10 ** places AS HUGEINT) AS VARCHAR) || '.'
    || lpad(CAST(units % CAST(10 ** places AS HUGEINT) AS VARCHAR), places, '0');

-- USD with 6 decimals from nano-dollars; NULL (no value) stays NULL, an empty cell.
-- A negative value keeps its sign even when it rounds to zero, as Decimal does.
CREATE OR REPLACE MACRO money(nano) AS
    CASE WHEN nano < 0 THEN '-' ELSE '' END
    || fixed(half_even_div(abs(CAST(nano AS HUGEINT)), 1000), 6);

-- numerator / denominator * scale with 2 decimals, half-even; '' when the denominator is 0.
CREATE OR REPLACE MACRO ratio(numerator, denominator, scale) AS
    CASE WHEN denominator = 0 THEN ''
    ELSE CASE WHEN (numerator < 0) <> (denominator < 0) THEN '-' ELSE '' END
        || fixed(half_even_div(abs(CAST(numerator AS HUGEINT)) * scale * 100,
                               abs(CAST(denominator AS HUGEINT))), 2)
    END;

CREATE OR REPLACE MACRO bool_text(value) AS CASE WHEN value THEN 'true' ELSE 'false' END;

-- A JSON string as orjson writes it: DuckDB's to_json escapes the same characters, but
-- writes the hex of \u00XX escapes in upper case; those 9 controls are spelt out here.
CREATE OR REPLACE MACRO json_string(s) AS
    CASE WHEN regexp_matches(s, '[\x0b\x0e-\x1f]') THEN
        '"' || replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(
            replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(
            replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(
            replace(replace(replace(replace(s,
            '\', '\\'), '"', '\"'), chr(8), '\b'), chr(9), '\t'), chr(10), '\n'),
            chr(12), '\f'), chr(13), '\r'), chr(0), '\u0000'), chr(1), '\u0001'),
            chr(2), '\u0002'), chr(3), '\u0003'), chr(4), '\u0004'), chr(5), '\u0005'),
            chr(6), '\u0006'), chr(7), '\u0007'), chr(11), '\u000b'), chr(14), '\u000e'),
            chr(15), '\u000f'), chr(16), '\u0010'), chr(17), '\u0011'), chr(18), '\u0012'),
            chr(19), '\u0013'), chr(20), '\u0014'), chr(21), '\u0015'), chr(22), '\u0016'),
            chr(23), '\u0017'), chr(24), '\u0018'), chr(25), '\u0019'), chr(26), '\u001a'),
            chr(27), '\u001b'), chr(28), '\u001c'), chr(29), '\u001d'), chr(30), '\u001e'),
            chr(31), '\u001f') || '"'
    ELSE CAST(to_json(s) AS VARCHAR) END;

-- Aggregate: a count map as a compact JSON object, keys in code-point (byte) order
-- (sorting the group's list is faster than string_agg's ORDER BY; NULL keys are skipped).
CREATE OR REPLACE MACRO json_counts(key, count) AS
    '{' || coalesce(array_to_string(list_transform(
        list_sort(list({'k': key, 'v': count}) FILTER (WHERE key IS NOT NULL)),
        lambda entry: json_string(entry.k) || ':' || CAST(entry.v AS VARCHAR)), ','), '') || '}';

-- Every entity of one dimension kind as of the instant end_ms (exclusive):
--   attributes  of its latest version before end_ms, else of its earliest version;
--   deleted_at_end  that latest version's deletion flag, NULL without a version before end_ms.
-- Versions are ordered by (occurred_ms, event_id). An entity *exists* at the end when
-- deleted_at_end is false.
CREATE OR REPLACE MACRO as_of(dimension_kind, end_ms) AS TABLE
    SELECT
        entity_id,
        coalesce(
            arg_max(attributes, (occurred_ms, event_id)) FILTER (WHERE occurred_ms < end_ms),
            arg_min(attributes, (occurred_ms, event_id))
        ) AS attributes,
        arg_max(deleted, (occurred_ms, event_id)) FILTER (WHERE occurred_ms < end_ms) AS deleted_at_end
    FROM dimensions
    WHERE kind = dimension_kind
    GROUP BY entity_id;

-- The window's facts: start_ms <= occurred_ms < end_ms (each with its bucket: engine.py).
CREATE OR REPLACE MACRO window_facts(start_ms, end_ms) AS TABLE
    SELECT * FROM facts WHERE occurred_ms >= start_ms AND occurred_ms < end_ms;

-- A text attribute of a version's JSON attributes; absent or null is ''.
CREATE OR REPLACE MACRO text_attribute(attributes, name) AS
    coalesce(json_extract_string(attributes, '$.' || name), '');
