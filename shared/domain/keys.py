"""Object-key layout of the aggregates bucket, in one place.

    v1/orgs/{org}/days/{day}/head.json          day head: aggregate + segment list (commit)
    v1/orgs/{org}/days/{day}/facts-{id}.ndjson  immutable fact segment (dedup + sub-day)
    v1/orgs/{org}/dims/{kind}.json              dimension history of one entity kind

Ids are validated (``shared.contracts.ids``) before they reach this module; the assertion
here is the last line of defence, so no key can ever escape its workspace prefix.
"""

from __future__ import annotations

import uuid
from datetime import date

from shared.contracts.ids import is_valid_id

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


def dims_key(org_id: str, kind: str) -> str:
    if kind not in DIM_KINDS:
        raise ValueError(f"unknown dimension kind {kind!r}")
    return f"{_org(org_id)}dims/{kind}.json"


def parse_day_prefix(prefix: str) -> date | None:
    """The day of ``.../days/YYYY-MM-DD/``, or None for anything else."""
    segment = prefix.rstrip("/").rsplit("/", 1)[-1]
    try:
        return date.fromisoformat(segment)
    except ValueError:
        return None
