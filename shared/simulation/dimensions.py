"""Dimension events: upserts of users, agents, projects and API keys, and settings.

Every non-ghost entity gets an initial upsert when it joins (near the start for most),
some get later changes (role, licence, limit, name…), some a deletion; each upsert
carries the full attribute set, as contract §2 requires. The schedule is built up
front — it is proportional to the entity tables, not to the number of events — and
merged by time into the activity stream.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.simulation import names
from shared.simulation.config import SimConfig
from shared.simulation.timefmt import TimestampRenderer, iso_date
from shared.simulation.world import DAY_MS, EntityTable, Workspace

_HOUR_MS = 3_600_000
# Two limits are half-nano ties (more than 9 decimals): 250.5 and 19.99 once rounded.
_LIMITS: tuple[float | int | None, ...] = (
    None, 0, 25, 50, 100, 250.5000000005, 1000, 19.9899999995
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Scheduled:
    at_ms: int
    seq: int
    org_id: str
    type: str
    event: dict[str, Any]


class _Builder:
    """Accumulates one workspace's dimension events with ids ``{tag}.d{n}``."""

    def __init__(self, ws: Workspace, rng: random.Random, tag: str) -> None:
        self.ws, self.rng, self.tag = ws, rng, tag
        self.clock = TimestampRenderer(rng)
        self.items: list[Scheduled] = []
        self.seq = 0

    def add(self, kind: str, at_ms: int, fields: dict[str, Any]) -> None:
        occurred_at, at_ms = self.clock.render_varied(at_ms)
        event = {
            "event_id": f"{self.tag}.d{self.seq}",
            "type": kind,
            "org_id": self.ws.org_id,
            "occurred_at": occurred_at,
            **fields,
        }
        self.items.append(Scheduled(at_ms, self.seq, self.ws.org_id, kind, event))
        self.seq += 1

    def lifecycle(
        self,
        kind: str,
        table: EntityTable,
        id_field: str,
        attrs_of: Callable[[int], dict[str, Any]],
        change: Callable[[int, dict[str, Any]], dict[str, Any]],
        end_ms: int,
        change_share: float,
    ) -> None:
        """Initial upsert, maybe changes, maybe deletion, for every non-ghost entity."""
        rng = self.rng
        for index, entity_id in enumerate(table.ids):
            if index in table.ghosts:
                continue
            attrs = attrs_of(index)
            join = table.joined_ms[index]
            self.add(kind, join, {id_field: entity_id, **attrs})
            stop = table.deleted_ms[index] or end_ms
            if rng.random() < change_share and stop - join > 4 * _HOUR_MS:
                times = sorted(rng.randint(join + _HOUR_MS, stop - _HOUR_MS) for _ in range(2))
                if times[1] - times[0] < 2_000 or rng.random() < 0.5:
                    # one change; two upserts of an entity never share an instant, even
                    # after whole-second rendering, so "latest" is never a tie
                    times = times[:1]
                for at in times:
                    attrs = change(index, dict(attrs))
                    self.add(kind, at, {id_field: entity_id, **attrs})
            if table.deleted_ms[index] is not None:
                self.add(kind, stop, {id_field: entity_id, **attrs, "deleted": True})


def _user_attrs(ws: Workspace, rng: random.Random, start_ms: int) -> list[dict[str, Any]]:
    payg = set(ws.payg_users)
    clock = TimestampRenderer(rng, z_share=0.5)
    profiles = []
    for index in range(len(ws.users)):
        joined = min(ws.users.joined_ms[index], start_ms - rng.randint(0, 400) * DAY_MS)
        if ws.users.joined_ms[index] > start_ms + 3 * DAY_MS:
            joined = ws.users.joined_ms[index]
        profile: dict[str, Any] = {
            "name": names.person_name(rng),
            "email": names.email(rng, index),
            "role": rng.choice(names.ROLES),
            # mostly a date; sometimes a date-time with an offset (rendered as written)
            "joined_at": iso_date(joined) if rng.random() < 0.8 else clock.render_varied(joined)[0],
            "department": rng.choice(names.DEPARTMENTS),
            "company_name": rng.choice(names.COMPANIES),
            "license_type": "payg" if index in payg else rng.choice(names.LICENSES),
            "payg_limit": rng.choice(_LIMITS[1:]) if index in payg else None,
        }
        if rng.random() < 0.1:  # missing text fields mean empty (§2)
            del profile[rng.choice(("department", "company_name", "role"))]
        if profile["payg_limit"] is None and rng.random() < 0.5:
            del profile["payg_limit"]
        profiles.append(profile)
    return profiles


def _change_user(rng: random.Random, attrs: dict[str, Any]) -> dict[str, Any]:
    what = rng.randrange(4)
    if what == 0:
        attrs["role"] = rng.choice(names.ROLES)
    elif what == 1:
        attrs["name"] = names.person_name(rng)
    elif what == 2:
        attrs["payg_limit"] = rng.choice(_LIMITS)
    else:
        attrs["license_type"] = rng.choice(names.LICENSES)
        attrs["department"] = rng.choice(names.DEPARTMENTS)
    return attrs


def _settings(builder: _Builder, config: SimConfig) -> None:
    ws = builder.ws
    if not ws.sends_settings:
        return
    start = config.start_ms
    times = {start + builder.rng.randint(0, _HOUR_MS)}
    times |= {t for t in (ws.byok_since_ms, ws.private_since_ms) if t is not None and t > start}
    for at in sorted(times):
        private = ws.private_since_ms is not None and at >= ws.private_since_ms
        builder.add(
            "workspace_settings", at, {"byok": ws.byok_at(at), "user_level_data": not private}
        )


def workspace_schedule(ws: Workspace, config: SimConfig, tag: str) -> list[Scheduled]:
    """Every dimension event of one workspace, in no particular order."""
    rng = random.Random(f"{config.seed}:dims:{ws.index}")
    builder = _Builder(ws, rng, tag)
    end = config.end_ms
    _settings(builder, config)
    users = _user_attrs(ws, rng, config.start_ms)
    builder.lifecycle(
        "user_upserted",
        ws.users,
        "user_id",
        lambda i: users[i],
        lambda i, a: _change_user(rng, a),
        end,
        0.25,
    )

    def agent(index: int) -> dict[str, Any]:
        owner = rng.randrange(len(ws.users))
        return {
            "name": rng.choice(names.AGENT_NAMES),
            "description": rng.choice(names.DESCRIPTIONS),
            "url": f"https://app.example.com/agents/{ws.agents.ids[index]}",
            "owner_id": ws.users.ids[owner],
            "owner_email": users[owner].get("email", ""),
        }

    def rename(pool: tuple[str, ...]) -> Callable[[int, dict[str, Any]], dict[str, Any]]:
        return lambda _i, a: a | {"name": rng.choice(pool)}

    builder.lifecycle(
        "agent_upserted", ws.agents, "assistant_id", agent, rename(names.AGENT_NAMES), end, 0.2
    )

    def project(_index: int) -> dict[str, Any]:
        owner = rng.randrange(len(ws.users))
        return {
            "name": rng.choice(names.PROJECT_NAMES),
            "owner_id": ws.users.ids[owner],
            "owner_email": users[owner].get("email", ""),
        }

    builder.lifecycle(
        "project_upserted",
        ws.projects,
        "project_id",
        project,
        rename(names.PROJECT_NAMES),
        end,
        0.2,
    )
    builder.lifecycle(
        "api_key_upserted",
        ws.api_keys,
        "api_key_id",
        lambda _i: {"name": rng.choice(names.KEY_NAMES)},
        rename(names.KEY_NAMES),
        end,
        0.1,
    )
    return builder.items
