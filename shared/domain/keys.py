"""Object-key layout of the aggregates bucket, in one place.

    v1/orgs/{org}/days/{day}/head.json          day head: aggregate + segment list (commit)
    v1/orgs/{org}/days/{day}/facts-{id}.ndjson  immutable fact segment (dedup + sub-day)
    v1/orgs/{org}/days/{day}/facts-{id}.ids     its event ids' digests (dedup on reload)
    v1/orgs/{org}/dims/{kind}.json              dimension history of one entity kind
    v1/orgs/{org}/months/{YYYY-MM}/{part}.json  month rollup of one aggregate part (a cache)

Ids are validated (``shared.contracts.ids``) before they reach this module; the assertion
here is the last line of defence, so no key can ever escape its workspace prefix.
"""

from __future__ import annotations

import uuid
from datetime import date

from shared.contracts.ids import is_valid_id
from shared.domain.aggregate_parts import AGGREGATE_PARTS

ROOT = "v1/orgs/"
DIM_KINDS = ("users", "agents", "projects", "api_keys", "settings")


def _org(org_id: str) -> str:
    if not is_valid_id(org_id):
        raise ValueError(f"refusing to build an object key from org id {org_id!r}")
    return f"{ROOT}{org_id}/"


def days_prefix(org_id: str) -> str:
    return f"{_org(org_id)}days/"


def day_prefix(org_id: str, day: date) -> str:
    return f"{days_prefix(org_id)}{day.isoformat()}/"


def day_head_key(org_id: str, day: date) -> str:
    return f"{day_prefix(org_id, day)}head.json"


def new_facts_key(org_id: str, day: date) -> str:
    return f"{day_prefix(org_id, day)}facts-{uuid.uuid4().hex}.ndjson"


def digests_key(facts_key: str) -> str:
    """The digest object's key beside the fact segment's."""
    return facts_key.removesuffix(".ndjson") + ".ids"


def month_days_prefix(org_id: str, month: date) -> str:
    """The prefix every object of the days of ``month`` starts with (``days/YYYY-MM-``):
    one LIST of it shows the month's day heads and their ETags."""
    return f"{days_prefix(org_id)}{month:%Y-%m}-"


def months_prefix(org_id: str) -> str:
    return f"{_org(org_id)}months/"


def month_prefix(org_id: str, month: date) -> str:
    return f"{months_prefix(org_id)}{month:%Y-%m}/"


def month_rollup_key(org_id: str, month: date, part: str) -> str:
    if part not in AGGREGATE_PARTS:
        raise ValueError(f"unknown aggregate part {part!r}")
    return f"{month_prefix(org_id, month)}{part}.json"


def dims_key(org_id: str, kind: str) -> str:
    if kind not in DIM_KINDS:
        raise ValueError(f"unknown dimension kind {kind!r}")
    return f"{_org(org_id)}dims/{kind}.json"


def parse_month_prefix(prefix: str) -> date | None:
    """The first day of the month of ``.../months/YYYY-MM/``, or None for anything else."""
    segment = prefix.rstrip("/").rsplit("/", 1)[-1]
    try:
        return date.fromisoformat(f"{segment}-01") if len(segment) == 7 else None
    except ValueError:
        return None


def parse_day_head_key(key: str) -> date | None:
    """The day of ``.../days/YYYY-MM-DD/head.json``, or None for any other key."""
    prefix, _, name = key.rpartition("/")
    return parse_day_prefix(prefix) if name == "head.json" else None


def parse_day_prefix(prefix: str) -> date | None:
    """The day of ``.../days/YYYY-MM-DD/``, or None for anything else."""
    segment = prefix.rstrip("/").rsplit("/", 1)[-1]
    try:
        return date.fromisoformat(segment)
    except ValueError:
        return None
