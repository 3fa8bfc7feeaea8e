"""Window resolution in every IANA zone, on the local days around each offset change of
the last 12 months and on the 12-month edge: production (``shared.domain.window``)
against the oracle (``tests.reference.window``) and against a brute-force definition.

A deterministic sweep: every accepted zone (``zoneinfo.available_timezones()`` less the
names that are not places: ``localtime``, ``Factory``), each zone's offset changes
found by scanning its offsets from 12 months back to now (``tests.unit.window_edges``),
the local day before, of and after each change (single-day windows and the span), and
the first allowed local day 12 months back, the day before it and a window from it to
a ``to`` in the future (clamped to now). "Now" is read once from the one clock.

The brute-force definition reads a local day without ``datetime``'s fold logic: a day
starts at its first instant (``window_edges.day_start_ms``: local midnight's digits less
every quarter-hour offset, or the offset change that starts the day late) and a ``to``
date ends one millisecond before the next day starts. So consecutive local days tile
time exactly, even where a change falls at local midnight (the clocks of
America/Santiago, Asia/Beirut and Africa/Cairo fall back from 24:00 to 23:00; those of
America/Nuuk spring from 23:00 to 24:00).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from shared.domain.timezones import accepted_zone_names
from shared.domain.window import Window, WindowError, resolve_window
from tests.clock import NOW
from tests.reference.window import NOT_ZONES, RequestRejected, accepted_zones
from tests.reference.window import resolve_window as reference_window
from tests.unit.window_edges import (
    LAST_MS_OF_DAY,
    QUARTER_MS,
    day_start_ms,
    local_day,
    moment_of,
    ms_of,
    one_year_before,
    transitions,
)

NOW_MS = ms_of(NOW)


@dataclass(frozen=True)
class Case:
    zone: str
    from_date: str
    to_date: str
    why: str


@dataclass(frozen=True)
class Sweep:
    cases: list[Case]
    changes: dict[str, list[int]]


def wall_of(ms: int, zone: ZoneInfo) -> datetime:
    return moment_of(ms).astimezone(zone).replace(tzinfo=None)


def floor15(ms: int) -> int:
    return ms - ms % QUARTER_MS


def ceil15(ms: int) -> int:
    return -((-ms) // QUARTER_MS) * QUARTER_MS


def brute_window(case: Case) -> tuple[int, int]:
    zone = ZoneInfo(case.zone)
    start = day_start_ms(date.fromisoformat(case.from_date), zone)
    last = day_start_ms(date.fromisoformat(case.to_date) + timedelta(days=1), zone) - 1
    return floor15(start), ceil15(min(last, NOW_MS) + 1)


def days_around(changes: list[int], zone: ZoneInfo) -> Iterator[date]:
    for change in changes:
        before, after = local_day(change - 1, zone), local_day(change, zone)
        yield from (before - timedelta(days=1), before, after, after + timedelta(days=1))


@cache
def sweep() -> Sweep:
    cases: list[Case] = []
    all_changes: dict[str, list[int]] = {}
    for name in sorted(accepted_zones()):
        zone = ZoneInfo(name)
        today = NOW.astimezone(zone).date()
        earliest = one_year_before(today)
        since = datetime.combine(earliest + timedelta(days=2), time(), ZoneInfo("UTC"))
        changes = transitions(zone, ms_of(since), NOW_MS - 2 * 86_400_000)
        all_changes[name] = changes
        days = sorted(set(days_around(changes, zone)))
        cases += [Case(name, str(day), str(day), "day around a change") for day in days]
        for change in changes:
            first, last = local_day(change - 1, zone), local_day(change, zone)
            cases.append(
                Case(name, str(first - timedelta(days=1)), str(last + timedelta(days=1)), "span")
            )
        cases += [
            Case(name, str(earliest), str(earliest), "first allowed day"),
            Case(name, str(earliest - timedelta(days=1)), str(earliest), "a day too early"),
            Case(name, str(earliest), str(today + timedelta(days=3)), "12 months, clamped"),
            Case(name, str(today), str(today), "today, clamped"),
        ]
    return Sweep(cases, all_changes)


def ours(case: Case) -> Window | None:
    try:
        return resolve_window(case.from_date, case.zone, case.to_date, case.zone, now=NOW)
    except WindowError:
        return None


def describe(case: Case) -> str:
    return f"{case.zone} {case.from_date}..{case.to_date} ({case.why}) at now={NOW.isoformat()}"


def test_the_sweep_covers_every_zone_and_its_changes() -> None:
    result = sweep()
    assert {case.zone for case in result.cases} == accepted_zones() == accepted_zone_names()
    assert accepted_zones() == available_timezones() - NOT_ZONES
    # Zones that change their offset twice a year: one or both changes fall in the
    # scanned span (12 months less two days at each end), whatever the date.
    for name in ("Europe/Berlin", "Australia/Sydney", "Pacific/Chatham", "Australia/Lord_Howe"):
        assert len(result.changes[name]) in (1, 2), name
    assert sum(map(len, result.changes.values())) > 100


def test_names_that_are_not_places_are_refused_by_both() -> None:
    """``localtime`` (the exporter host's own zone on Debian) and ``Factory`` (IANA's
    "unspecified", abbreviation -00) are in ``available_timezones()`` but not zones a
    request may name; nor are the tz database's copies and file paths."""
    day = str(NOW.date())
    refused = sorted(available_timezones() - accepted_zones())
    assert set(refused) <= {"localtime", "Factory", "posixrules"}
    assert "Factory" in refused
    others = ["posix/Europe/Berlin", "right/UTC", "posixrules", "/etc/localtime", "Mars/Base"]
    for name in [*refused, "localtime", "Factory", *others]:
        assert ours(Case(name, day, day, "not a place")) is None, name
        try:
            reference_window(from_date=day, from_tz=name, to_date=day, to_tz=name, now=NOW)
        except RequestRejected:
            continue
        raise AssertionError(f"the oracle accepts {name!r}")


def test_production_equals_the_oracle_in_every_zone() -> None:
    mismatches = []
    for case in sweep().cases:
        mine = ours(case)
        try:
            theirs = reference_window(
                from_date=case.from_date,
                from_tz=case.zone,
                to_date=case.to_date,
                to_tz=case.zone,
                now=NOW,
            )
        except RequestRejected:
            if mine is not None:
                mismatches.append(f"{describe(case)}: only the oracle refuses")
            continue
        if mine is None:
            mismatches.append(f"{describe(case)}: only production refuses")
            continue
        got = (
            mine.start_ms,
            mine.end_ms,
            mine.date_range(),
            str(mine.period_start()),
            str(mine.period_end()),
        )
        expected = (
            ms_of(theirs.start),
            ms_of(theirs.end),
            theirs.date_range,
            theirs.period_start,
            theirs.period_end,
        )
        if got != expected:
            mismatches.append(f"{describe(case)}: {got} != {expected}")
    assert mismatches == [], "\n".join(mismatches[:20])


def test_production_equals_the_brute_force_definition() -> None:
    mismatches = []
    for case in sweep().cases:
        mine = ours(case)
        earliest = one_year_before(NOW.astimezone(ZoneInfo(case.zone)).date())
        if date.fromisoformat(case.from_date) < earliest:
            if mine is not None:
                mismatches.append(f"{describe(case)}: accepted, more than 12 months back")
            continue
        if mine is None:
            mismatches.append(f"{describe(case)}: refused")
            continue
        if (mine.start_ms, mine.end_ms) != brute_window(case):
            mismatches.append(f"{describe(case)}: {(mine.start_ms, mine.end_ms)}")
    assert mismatches == [], "\n".join(mismatches[:20])


def midnight_changes() -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(zone, local day) whose end is a change at local midnight, in two kinds:

    * a fall-back from 24:00 to 23:00 (America/Santiago in April, Asia/Beirut and
      Africa/Cairo in October): the day's last hour is repeated;
    * a spring-forward whose gap holds the end of the day (America/Nuuk in March,
      23:00 -> 24:00): 23:59:59.999 does not exist.
    """
    repeated, skipped = set(), set()
    for name, changes in sweep().changes.items():
        zone = ZoneInfo(name)
        for change in changes:
            before, after = wall_of(change - 1, zone), wall_of(change, zone)
            day_end = datetime.combine(before.date(), LAST_MS_OF_DAY)
            if after < before and day_end == before:
                repeated.add((name, str(before.date())))
            if before < day_end < after:
                skipped.add((name, str(before.date())))
    return repeated, skipped


@cache
def strays() -> set[tuple[str, str]]:
    """(zone, from day) of windows with an instant outside their local days."""
    found = set()
    for case in sweep().cases:
        window = ours(case)
        if window is None:
            continue
        zone = ZoneInfo(case.zone)
        first, last = date.fromisoformat(case.from_date), date.fromisoformat(case.to_date)
        for probe in (window.start_ms, window.end_ms - 1, *window_quarters(window)):
            if not first <= local_day(probe, zone) <= last:
                found.add((case.zone, case.from_date))
                break
    return found


def window_quarters(window: Window) -> range:
    span = min(window.end_ms, window.start_ms + 3 * 86_400_000)  # the first days suffice
    return range(window.start_ms, span, QUARTER_MS)


def consecutive_days() -> Iterator[tuple[Case, Window, Window]]:
    for case in sweep().cases:
        if case.why != "day around a change":
            continue
        day = date.fromisoformat(case.from_date)
        following = str(day + timedelta(days=1))
        this = ours(case)
        after = ours(Case(case.zone, following, following, case.why))
        if this is not None and after is not None and after.end_ms <= NOW_MS:
            yield case, this, after


def test_windows_hold_only_their_local_days() -> None:
    """No instant of a window belongs to a local day outside ``from``..``to``, the days
    whose end a change at midnight skipped included."""
    assert strays() == set()


def test_consecutive_local_days_tile_time() -> None:
    """Day D's window ends exactly where day D+1's starts, in every zone and around every
    change, changes at local midnight included (no lost and no doubled hour)."""
    pairs = list(consecutive_days())
    checked = {(case.zone, case.from_date) for case, _, _ in pairs}
    mismatches = [
        f"{describe(case)}: {this.date_range()['to']} .. {after.date_range()['from']}"
        for case, this, after in pairs
        if this.end_ms != after.start_ms
    ]
    assert mismatches == [], "\n".join(mismatches[:20])
    repeated, skipped = midnight_changes()
    # Every change at local midnight in the sweep's span is among the pairs checked,
    # once the day after it has ended.
    assert {pair for pair in repeated | skipped if _fully_past(*pair)} <= checked
    assert (
        "Europe/Berlin",
        str(local_day(sweep().changes["Europe/Berlin"][0], ZoneInfo("Europe/Berlin"))),
    ) in checked


def _fully_past(zone: str, day: str) -> bool:
    """Whether the day after ``day`` has ended (only such pairs can be compared)."""
    following = date.fromisoformat(day) + timedelta(days=2)
    return day_start_ms(following, ZoneInfo(zone)) <= NOW_MS
