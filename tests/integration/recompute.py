"""A plain recomputation of per-day figures straight from raw events, written separately
from the fold so the two can be compared (integer nano-dollars via Decimal text)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import orjson

from shared.simulation import SimRecord


def _nano(value: Any) -> int:
    """Whole nano-dollars of a JSON number, half to even (the contract's money rule)."""
    return int((Decimal(repr(float(value))) * 10**9).to_integral_value(ROUND_HALF_EVEN))


def _day(occurred_at: str) -> date:
    return datetime.fromisoformat(occurred_at.replace("Z", "+00:00")).astimezone(UTC).date()


@dataclass
class DayFigures:
    messages_by_user: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    prompt_by_user: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    requests_by_key: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    cost_by_key: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    payg_by_user: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    conversations_by_agent: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    requests_by_model: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def normalised(self) -> dict[str, Any]:
        return {
            name: {
                key: (sorted(value) if isinstance(value, set) else value)
                for key, value in getattr(self, name).items()
                if value
            }
            for name in self.__dataclass_fields__
        }


def expected_days(records: list[SimRecord]) -> dict[tuple[str, date], dict[str, Any]]:
    """(org, UTC day) -> figures, over valid events, each (org, event_id) once."""
    seen: set[tuple[str, str]] = set()
    days: dict[tuple[str, date], DayFigures] = defaultdict(DayFigures)
    for record in records:
        if record.kind == "invalid":
            continue
        event = orjson.loads(record.value)
        identity = (event["org_id"], event["event_id"])
        if identity in seen:
            continue
        seen.add(identity)
        kind = event["type"]
        if kind not in {"message", "api_request", "payg_consumption"}:
            continue
        figures = days[(event["org_id"], _day(event["occurred_at"]))]
        usage = event.get("usage") or {}
        if kind == "message":
            figures.messages_by_user[event["user_id"]] += 1
            figures.prompt_by_user[event["user_id"]] += usage.get("prompt_tokens", 0)
            if event.get("assistant_id") and event.get("conversation_id"):
                figures.conversations_by_agent[event["assistant_id"]].add(event["conversation_id"])
            figures.requests_by_model[event["model"]] += event.get("requests", 1)
        elif kind == "api_request":
            figures.requests_by_key[event["api_key_id"]] += event.get("requests", 1)
            figures.cost_by_key[event["api_key_id"]] += _nano(usage.get("cost_usd", 0))
            figures.requests_by_model[event["model"]] += event.get("requests", 1)
        else:
            figures.payg_by_user[event["user_id"]] += _nano(event["amount"])
    return {key: figures.normalised() for key, figures in days.items()}


def figures_of_facts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The same figures read off stored facts rows (``shared.columnar.schema.FACTS``)."""
    figures = DayFigures()
    for row in rows:
        kind = row["kind"]
        if kind == "message":
            figures.messages_by_user[row["user_id"]] += 1
            figures.prompt_by_user[row["user_id"]] += row["prompt_tokens"]
            if row["assistant_id"] and row["conversation_id"]:
                figures.conversations_by_agent[row["assistant_id"]].add(row["conversation_id"])
            figures.requests_by_model[row["model"]] += row["requests"]
        elif kind == "api_request":
            figures.requests_by_key[row["api_key_id"]] += row["requests"]
            figures.cost_by_key[row["api_key_id"]] += row["cost_nano"]
            figures.requests_by_model[row["model"]] += row["requests"]
        else:
            figures.payg_by_user[row["user_id"]] += row["amount_nano"]
    return figures.normalised()
