"""Two workspaces that share ids, hostile ids, and the object-key layout they must keep
to: the material of the tenant-isolation and signed-URL scenarios (7, 8) and the key
check of the bad-input scenario (6)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import orjson

from shared.contracts.ids import is_valid_id
from tests.integration.reliability.badinput import HOSTILE_IDS

ALPHA, BETA = "ws-alpha", "ws-beta"
ENTITY_FIELDS = ("user_id", "assistant_id", "project_id", "api_key_id")
_DAY = r"\d{4}-\d{2}-\d{2}"
_PART = r"part-\d{5}-[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}-c\d{3}\.[a-z0-9]+\.parquet"
_LOG = r"_delta_log/(\d{20}\.json|\d{20}\.checkpoint\.parquet|_last_checkpoint)"
#: A roll-up's name: the facts file it sums, or a merged one's digest.
_ROLLUP = rf"({_PART}|merged-[0-9a-f]{{32}})"
#: Storage format 3 (docs/storage.md): a workspace's two Delta tables and the three
#: derived roll-up tables, nothing else.
AGGREGATE_KEY = re.compile(
    rf"v3/workspaces/(?P<org>[^/]+)/(facts/({_LOG}|span=({_DAY}|\d{{4}}-\d{{2}})/{_PART})"
    rf"|dimensions/({_LOG}|{_PART})"
    rf"|user_rollups/({_LOG}|source={_ROLLUP}/{_PART})"
    rf"|key_rollups/({_LOG}|rollup={_ROLLUP}/{_PART})"
    rf"|agent_rollups/({_LOG}|rollup={_ROLLUP}/{_PART}))"
)
_KINDS = "(users|agents|api-keys|projects|models)"
#: An export file in each format (contract §5), its owner marker, its manifest (§4).
EXPORT_KEY = re.compile(
    rf"((file-owners/)?{_KINDS}-usage/(?P<org>[^/]+)/{_KINDS}-usage-{_DAY}-{_DAY}-"
    r"[A-Za-z0-9_.:-]{1,8}\.(csv|csv\.gz|parquet|ndjson)(\.owner)?"
    rf"|{_KINDS}-usage/(?P<man_org>[^/]+)/{_KINDS}-usage-{_DAY}-{_DAY}-"
    r"[A-Za-z0-9_.:-]{1,8}\.manifest\.json"
    r"|requests/(?P<req_org>[^/]+)/[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}\.json)"
)


def workspace_events(org: str, marker: str, now: datetime) -> list[bytes]:
    """A BYOK workspace whose every text carries ``marker``; ids shared with the other."""
    at = now - timedelta(days=3)

    def event(number: int, kind: str, hours: int = 0, **fields: Any) -> bytes:
        moment = (at + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")
        head = {"event_id": f"shared-{number}", "type": kind, "org_id": org}
        return orjson.dumps(head | {"occurred_at": moment} | fields)

    values = [event(0, "workspace_settings", byok=True, user_level_data=True)]
    for n in range(1, 6):
        values.append(event(n, "user_upserted", user_id=f"u{n}", name=f"{marker} user {n}",
                            email=f"{marker.lower()}{n}@example.com"))  # fmt: skip
    values.append(event(10, "agent_upserted", assistant_id="a1", name=f"{marker} agent",
                        owner_email=f"{marker}@example.com"))  # fmt: skip
    values.append(event(11, "project_upserted", project_id="p1", name=f"{marker} project"))
    values.append(event(12, "api_key_upserted", api_key_id="k1", name=f"{marker} key"))
    for n in range(20, 60):
        values.append(
            event(n, "message", hours=n % 24, user_id=f"u{n % 5 + 1}", assistant_id="a1",
                  project_id="p1", conversation_id=f"{marker}-c{n % 3}",
                  model=f"{marker}-model", provider="openai", byok=True,
                  deployment=f"{marker}-deployment", source=f"{marker}-src",
                  actions=[f"{marker}-action"],
                  usage={"prompt_tokens": n, "completion_tokens": 1, "cost_usd": 0.5})
        )  # fmt: skip
    for n in range(60, 70):
        values.append(event(n, "api_request", hours=n % 24, api_key_id="k1",
                            model=f"{marker}-model", provider="openai", requests=n))  # fmt: skip
        values.append(event(n + 100, "payg_consumption", hours=1, user_id="u1", amount=2.5))
    return values


def hostile_events(now: datetime) -> list[tuple[bytes, bytes]]:
    """Each hostile id as a workspace id, and as every entity id inside ``ws-alpha``."""
    at = (now - timedelta(days=2)).isoformat().replace("+00:00", "Z")
    records = []
    for index, hostile in enumerate([*HOSTILE_IDS, f"{ALPHA}/../{BETA}", f"{BETA}/../{ALPHA}"]):
        call = {"model": "gpt-4.1", "provider": "openai", "occurred_at": at}
        as_org = {"event_id": f"h-org-{index}", "type": "message", "org_id": hostile,
                  "user_id": "u1", **call}  # fmt: skip
        records.append((hostile.encode("utf-8", "replace"), orjson.dumps(as_org)))
        for field in ENTITY_FIELDS:
            kind = "api_request" if field == "api_key_id" else "message"
            event = {"event_id": f"h-{field}-{index}", "type": kind, "org_id": ALPHA,
                     "user_id": "u1", field: hostile, **call}  # fmt: skip
            records.append((ALPHA.encode(), orjson.dumps(event)))
    return records


def key_violations(
    keys: list[str], pattern: re.Pattern[str], orgs: set[str] | None = None
) -> list[str]:
    """Keys outside the layout, of a workspace not in ``orgs`` (when given), with an
    invalid workspace id, or with a hostile fragment."""
    bad = []
    for key in keys:
        match = pattern.fullmatch(key)
        groups = match.groupdict() if match else {}
        org = groups.get("org") or groups.get("man_org") or groups.get("req_org")
        if (
            match is None
            or not is_valid_id(org)
            or (orgs is not None and org not in orgs)
            or not key.isascii()
            or ".." in key
            or any(ch in key for ch in "\\%\x00\n\r ")
        ):
            bad.append(key)
    return bad
