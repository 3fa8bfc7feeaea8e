"""Reference exports computed straight from raw usage events: the test oracle.

A deliberately simple, independent reading of CONTRACT.md §2 (events), §3 (windows) and
§5 (CSV). It imports nothing from ``shared.domain`` or ``services`` — it exists to
cross-check them — only ``shared.codec`` and the standard library. It favours obvious
code over speed (every export re-scans the workspace's events), yet handles a few
million events per test run.

Usage::

    log = build_log(raw_values, valid_at=ingest_time)        # once per stream
    result = reference_export(log, org_id="ws-0001", data_type="users",
                              from_date="2026-01-01", from_tz="Europe/Berlin",
                              to_date="2026-01-31", to_tz="Europe/Berlin", now=now)
    result.header, result.rows          # exact CSV cell texts
    reference_csv_bytes(result)         # RFC 4180 bytes
    reference_typed_rows(result)        # the typed formats' values (Parquet, NDJSON)

Decisions where the contract is silent (numbered; the code cites them):

1. *Valid JSON* is what ``shared.codec`` (orjson) parses: UTF-8, RFC 8259, no NaN or
   Infinity; integers beyond 64 bits parse as floats and so fail integer fields. The
   value must be an object and at most 1 MiB (ingest's ``max_event_bytes``).
2. Entity ids (``org_id``, ``user_id``, ``assistant_id``, ``project_id``,
   ``api_key_id``) must match the contract's id pattern and contain no ``..`` (they
   become storage-key segments); ``event_id`` only its own pattern.
3. ``null`` is the same as an absent field for every optional field, so defaults apply.
   Required: ``event_id``, ``type``, ``org_id``, ``occurred_at``, the entity id of the
   type (``user_id`` of messages and payg, ``api_key_id`` of API requests, the id of an
   upsert) and ``amount`` of ``payg_consumption``.
4. Numbers are strict: counts are JSON integers (not ``1.0``, ``true`` or ``"1"``),
   ``requests`` ≥ 1, tokens ≥ 0; money is any finite JSON number ≥ 0 (``payg_limit``
   too). ``cached_prompt_tokens + cache_creation_tokens > prompt_tokens`` is invalid,
   since ``prompt_tokens`` includes both (§2) and ``no_cache_tokens`` would go negative.
   Upper bounds, so every accepted event and a day's sums stay storable as 64-bit
   integers: tokens ≤ 10⁹, ``requests`` ≤ 10⁶, money ≤ 10⁶ USD. Text fields must be
   strings. ``model`` and ``provider`` are required and non-empty
   on calls (the contract gives them no default), else the event is invalid.
   Text limits, in characters: ``model``, ``provider``, ``source``, ``deployment``,
   ``conversation_id`` and each action at most 256; the texts of upserts at most 4096;
   at most 256 actions. ``source`` (when given) and every action must be non-empty;
   ``deployment`` and ``conversation_id`` may be empty. Fields a type does not define
   (``actions`` of an API request, say) are ignored, whatever they hold.
5. ``occurred_at``: ``YYYY-MM-DDTHH:MM:SS[.fraction](Z|±hh:mm)`` (``t``/``z`` accepted),
   fraction truncated to microseconds. Valid iff ``oldest ≤ occurred_at ≤ valid_at +
   24 h``, where ``oldest`` is the start of the UTC day one calendar year and one day
   before ``valid_at``'s UTC date (29 February → 28 February): the extra day lets a
   12-month export in any timezone (UTC+14 too) find all its events. ``valid_at`` is
   the ingest time; it defaults to the export's ``now``.
6. Dedup by (``org_id``, ``event_id``) among valid events, first arrival wins; an invalid
   event does not claim its id (it went to the DLQ, not into the state).
7. Attributes: the latest upsert with ``occurred_at`` strictly before the window's end
   (the same exclusive bound events are counted against), else the earliest upsert
   known. Ties on ``occurred_at`` are ordered by ``event_id`` (the greater is the later
   version), so answers never depend on arrival order. A deletion upsert's own
   attributes are shown (an upsert carries the full set). *Existed at the end*: that
   latest upsert exists and is not deleted. *Not deleted at the end* (agents'
   ``active_users``): a sender without any upsert before the end counts as active.
8. Workspace settings: the latest valid ``workspace_settings`` by ``occurred_at`` (ties:
   by ``event_id``) among all events, whatever the window; none → byok false,
   user_level_data true. ``group_by=deployment`` needs byok true (else 400).
9. Window: ``to`` is clamped to ``now`` before rounding, ``end = ceil15(min(to, now) +
   1 ms)``. ``date_range.from`` is ``floor15(from)``, ``date_range.to`` is ``end - 1 ms``,
   each in its bound's zone with millisecond precision and offset; a zero offset is
   written ``Z`` (as the reference API shows for UTC). ``period_start``/``period_end``
   are the local dates of ``floor15(from)`` and ``end - 1 ms``.
10. Rejected (400): ``to`` before ``from`` (as given), ``from`` after ``now`` (the clamped
    ``to`` would precede it), an unknown data type or group_by, an invalid ``org_id``,
    a zone not in ``zoneinfo.available_timezones()`` or not a place (``localtime``,
    ``Factory``, ``posix/…``, ``right/…``), a date that is neither ``YYYY-MM-DD`` nor
    ``YYYY-MM-DDThh:mm[:ss[.fff]]`` with an optional ``Z``/``±hh:mm`` (ignored).
11. *From more than 12 months before now* compares local dates: ``from``'s date is
    refused when it is before today (in ``from``'s zone) minus 12 calendar months, so a
    date picked exactly one year back is accepted all day long.
12. Money (the contract's rule, ``money.py``): each amount — the JSON number read as
    the nearest double, taken at its shortest decimal form — becomes a whole number of
    nano-dollars, rounded half to even
    (``0.0000000035`` → 4 nano, ``0.0000000025`` → 2); sums of nano-dollars are exact;
    a money cell is the sum rounded to 6 decimals, half to even, so 700 x 0.0000000035
    shows ``0.000003``. ``payg_limit`` too: a limit below half a nano-dollar is 0.
    Averages and percentages are exact quotients (of those nano-dollar figures)
    rounded half-even once. Money always shows 6 decimals (``0.000000``), averages and
    percentages always 2 (``2.50``).
13. Empty cells: avg/min/max over no messages; ``messages_per_user`` when
    ``active_users`` is 0; ``payg_limit_current`` with no limit; the utilisation with no
    limit or a limit of 0. Sums over nothing are ``0`` / ``0.000000``.
14. JSON columns: compact, keys in ascending code-point order, non-ASCII written as
    UTF-8 (not ``\\u`` escapes), values integers; messages without a model count under
    ``""``. A message listing an action twice counts once for it.
15. Subgroups: an entity with no activity in its subgroup dimension (no messages; users
    with only payg activity) has exactly one row with an empty subgroup value; a null
    ``deployment`` is ``""``; ``source`` is upper-cased with ``str.upper``. Rows sort by
    their own (per-subgroup) main count, then id, then subgroup value, so one entity's
    rows need not be adjacent.
16. Sorting compares strings by code point (not locale); ``bring_your_keys`` false first.
    Ranks are computed over all rows of the export, zero counts included.
17. The formula guard applies to every cell; numbers (all ≥ 0), dates and JSON never
    start with a guarded character, so only text is ever prefixed.
18. ``joined_at``: the date part as written; a date-time is not converted between zones.
19. Agents' avg/min/max are per ``message`` event (one prompt), not per model request.
20. CSV bytes: the ``csv`` module's ``excel`` dialect — ``\\r\\n`` line ends, quoting only
    when needed, UTF-8 without BOM. Another RFC 4180 writer may quote differently, so
    tests should compare parsed cells unless they compare like with like.
21. ``result.status`` is 404 when an export has no rows (the models export of a
    workspace without activity in the window).
"""

from tests.reference.export import (
    ReferenceResult,
    reference_csv_bytes,
    reference_export,
    reference_request,
)
from tests.reference.formats import reference_typed_rows
from tests.reference.log import EventLog, build_log
from tests.reference.parsing import Invalid, parse_event
from tests.reference.window import RequestRejected, Window, resolve_window

__all__ = [
    "EventLog",
    "Invalid",
    "ReferenceResult",
    "RequestRejected",
    "Window",
    "build_log",
    "parse_event",
    "reference_csv_bytes",
    "reference_export",
    "reference_request",
    "reference_typed_rows",
    "resolve_window",
]
