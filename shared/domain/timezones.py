"""The timezone names an export request may use (contract §3): IANA zones that name a place.

``zoneinfo.available_timezones()`` lists every TZif file it finds, which is more than the
IANA zone names: Debian's ``/usr/share/zoneinfo/localtime`` (a copy of the machine's own
zone, so a request would mean whatever the exporter host is set to) and IANA's
``Factory`` (offset 0, abbreviation ``-00``: "local time is unspecified") are files
there, not places. ``posix/…`` and ``right/…`` (leap-second clocks, which are not Unix
time) are copies a system may also install; ``available_timezones`` leaves them out
today and this rule says so on its own. Legacy IANA names (``EST5EDT``, ``GB``,
``Etc/GMT+5``) are IANA database entries and stay accepted.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final
from zoneinfo import available_timezones

NOT_PLACES: Final = frozenset({"localtime", "Factory", "posixrules"})
COPY_TREES: Final = ("posix/", "right/")


@lru_cache(maxsize=1)
def accepted_zone_names() -> frozenset[str]:
    """Every name a request's ``timezone`` may hold, on this machine's tz database."""
    return frozenset(
        name
        for name in available_timezones()
        if name not in NOT_PLACES and not name.startswith(COPY_TREES)
    )


def is_accepted_zone(name: object) -> bool:
    return isinstance(name, str) and name in accepted_zone_names()
