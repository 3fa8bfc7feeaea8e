"""Malformed events, each tagged with the reason category ingest should dead-letter it for.

Each invalid event starts as a well-formed one (so it looks like a real producer bug,
not noise) and breaks exactly one rule of contract §2. Invalid events have ids of their
own (``{tag}.x{n}``) so they never collide with valid ones: a consumer that keys dedup
on a rejected event would otherwise lose the valid event carrying the same id.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from shared import codec
from shared.simulation.activity import ActivityGenerator
from shared.simulation.timefmt import TimestampRenderer
from shared.simulation.world import DAY_MS, Workspace

_ONE_MIB = 1024 * 1024
# The entity id each type requires (besides event_id, type, org_id, occurred_at).
_REQUIRED = {
    "message": "user_id",
    "api_request": "api_key_id",
    "payg_consumption": "user_id",
    "agent_upserted": "assistant_id",
}
_BAD_IDS = ("../etc/passwd", "a/b", "u..x", "-starts-with-dash", "usér", "", "x" * 129, "a b")
_BAD_TIMESTAMPS = (
    "2025-03-01T10:00:00", "2025-03-01", "yesterday", "2025-02-30T10:00:00Z",
    "2025-03-01T10:00:00+5:30", "2025-03-01 25:00:00Z", "",
)  # fmt: skip


class InvalidFactory:
    """``make(ws, at_ms)`` returns (value bytes, reason, event type) for one bad event."""

    MAX_TOO_LARGE = 3  # > 1 MiB values are costly to produce and to ship: a few suffice

    def __init__(
        self, activity: ActivityGenerator, rng: random.Random, tag: str, end_ms: int
    ) -> None:
        self.activity, self.rng, self.tag, self.end_ms = activity, rng, tag, end_ms
        self.clock = TimestampRenderer(rng)
        self.count = 0
        self.too_large = 0
        self.breakers: list[tuple[float, str, Callable[[dict[str, Any]], Any]]] = [
            (10, "bad_json", self._bad_json),
            (3, "not_object", self._not_object),
            (15, "missing_field", self._missing_field),
            (15, "wrong_type", self._wrong_type),
            (8, "out_of_range", self._out_of_range),
            (12, "bad_id", self._bad_id),
            (8, "bad_timestamp", self._bad_timestamp),
            (8, "too_old", self._too_old),
            (6, "future", self._future),
            (6, "unknown_type", self._unknown_type),
            (0.2, "too_large", self._too_large),
        ]
        self.total_weight = sum(weight for weight, _, _ in self.breakers)

    def make(self, ws: Workspace, at_ms: int) -> tuple[bytes, str, str]:
        roll = self.rng.random() * self.total_weight
        reason, breaker = self.breakers[-1][1:]
        for weight, name, candidate in self.breakers:
            roll -= weight
            if roll < 0:
                reason, breaker = name, candidate
                break
        if reason == "too_large" and self.too_large >= self.MAX_TOO_LARGE:
            reason, breaker = "wrong_type", self._wrong_type
        kind, event = self._base(ws, at_ms)
        event["event_id"] = f"{self.tag}.x{self.count:x}"
        self.count += 1
        broken = breaker(event)
        if reason == "too_large":
            self.too_large += 1
        value = broken if isinstance(broken, bytes) else codec.dumps(broken)
        return value, reason, kind

    def _base(self, ws: Workspace, at_ms: int) -> tuple[str, dict[str, Any]]:
        roll = self.rng.random()
        if roll < 0.75:
            return "message", self.activity.message(ws, at_ms)
        if roll < 0.85 and ws.api_keys.pool:
            return "api_request", self.activity.api_request(ws, at_ms)
        if roll < 0.92 and ws.payg_users:
            return "payg_consumption", self.activity.payg(ws, at_ms)
        agent = {"assistant_id": "agent-x", "name": "Agent", "description": "d", "url": ""}
        event = self.activity.message(ws, at_ms)
        head = {k: event[k] for k in ("event_id", "org_id", "occurred_at")}
        return "agent_upserted", {**head, "type": "agent_upserted", **agent}

    # ---- breakers: each returns the broken event (dict) or raw bytes ------------------
    def _bad_json(self, event: dict[str, Any]) -> bytes:
        data = codec.dumps(event)
        variant = self.rng.randrange(5)
        if variant == 0:
            return data[: self.rng.randrange(1, len(data) - 1)]
        if variant == 1:
            return data + b"}"
        if variant == 2:
            return data.replace(b'"org_id"', b"org_id", 1)
        if variant == 3:
            return b"\xff\xfe" + data
        return data.replace(b"{", b'{"n":NaN,', 1)

    def _not_object(self, event: dict[str, Any]) -> Any:
        return self.rng.choice(([event], "message", 42, None))

    def _missing_field(self, event: dict[str, Any]) -> dict[str, Any]:
        fields = ["event_id", "type", "org_id", "occurred_at", _REQUIRED[event["type"]]]
        if event["type"] == "payg_consumption":
            fields.append("amount")
        del event[self.rng.choice(fields)]
        return event

    def _wrong_type(self, event: dict[str, Any]) -> dict[str, Any]:
        kind = event["type"]
        field: str
        value: object
        if kind in ("message", "api_request"):
            field, value = self.rng.choice(
                (
                    ("requests", "2"),
                    ("byok", "true"),
                    ("usage", "lots"),
                    ("usage", [1]),
                    ("model", 4),
                    ("occurred_at", 1_700_000_000),
                    ("usage", {"prompt_tokens": 12.5}),
                    ("usage", {"cost_usd": "0.1"}),
                )
            )
            if kind == "message" and self.rng.random() < 0.3:
                field, value = "actions", "canvas"
        elif kind == "payg_consumption":
            field, value = self.rng.choice((("amount", "1.50"), ("amount", True), ("user_id", 7)))
        else:
            field, value = self.rng.choice((("deleted", "no"), ("name", 12), ("name", ["x"])))
        event[field] = value
        return event

    def _out_of_range(self, event: dict[str, Any]) -> dict[str, Any]:
        kind = event["type"]
        if kind == "payg_consumption":
            event["amount"] = -round(self.rng.random() * 10 + 0.01, 2)
        elif kind in ("message", "api_request"):
            usage = event["usage"] = dict(event["usage"])  # usage objects are shared
            variant = self.rng.randrange(4)
            if variant == 0:
                event["requests"] = 0
            elif variant == 1:
                usage["completion_tokens"] = -5
            elif variant == 2:
                usage["cost_usd"] = -0.01
            else:  # cache reads + writes are part of the prompt, never more than it
                usage["cached_prompt_tokens"] = usage["prompt_tokens"]
                usage["cache_creation_tokens"] = 1 + self.rng.randrange(100)
        else:  # an upsert: a negative spending limit
            event["type"] = "user_upserted"
            event["user_id"] = event.pop("assistant_id")
            event["payg_limit"] = -round(self.rng.random() * 100 + 1, 2)
        return event

    def _bad_id(self, event: dict[str, Any]) -> dict[str, Any]:
        bad = self.rng.choice(_BAD_IDS)
        field = self.rng.choice(("org_id", _REQUIRED[event["type"]], "event_id"))
        if field == "event_id":
            bad = self.rng.choice(("ev/1", "", "x" * 129, "é1", "a b"))
        event[field] = bad
        return event

    def _bad_timestamp(self, event: dict[str, Any]) -> dict[str, Any]:
        event["occurred_at"] = self.rng.choice(_BAD_TIMESTAMPS)
        return event

    def _too_old(self, event: dict[str, Any]) -> dict[str, Any]:
        at = self.end_ms - self.rng.randint(400, 800) * DAY_MS
        event["occurred_at"] = self.clock.render_varied(at)[0]
        return event

    def _future(self, event: dict[str, Any]) -> dict[str, Any]:
        at = self.end_ms + self.rng.randint(2 * DAY_MS, 30 * DAY_MS)
        event["occurred_at"] = self.clock.render_varied(at)[0]
        return event

    def _unknown_type(self, event: dict[str, Any]) -> dict[str, Any]:
        event["type"] = self.rng.choice(("message_v2", "click", "", None, "MESSAGE"))
        return event

    def _too_large(self, event: dict[str, Any]) -> dict[str, Any]:
        event["padding"] = "x" * (_ONE_MIB + 1024)  # unknown field, but the value is too big
        return event
