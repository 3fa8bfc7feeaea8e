"""Activity events — ``message``, ``api_request``, ``payg_consumption`` — on the hot path.

Everything random is drawn with ``rng.random()`` and table look-ups (token counts come
from precomputed log-normal tables) because this runs millions of times per stream.
Optional fields are sometimes left out or sent as ``null`` so that consumers' defaults
are exercised, and ``source`` is sometimes lower-case (ingest upper-cases it).
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from itertools import accumulate
from typing import Any

from shared.simulation.timefmt import TimestampRenderer
from shared.simulation.world import ModelSpec, Workspace

_TABLE = 4096
_USAGES_PER_MODEL = 1024
# None: the field is left out (the contract's default applies).
_SOURCES: tuple[str | None, ...] = (
    ("WEB",) * 24 + ("MOBILE",) * 6 + ("SLACK",) * 4 + ("TEAMS",) * 3
    + ("web", "mobile", "Slack", "teams", None, None)
)  # fmt: skip
_API_SOURCES: tuple[str | None, ...] = ("API", "API", "API", None, None, "api")
_ACTIONS: tuple[list[str], ...] = (
    ([],) * 60
    + (["web_search"],) * 10 + (["canvas"],) * 6 + (["data_analysis"],) * 5
    + (["code_interpreter"],) * 4 + (["web_search", "canvas"],) * 2
    + (["Slack_send_message"],) * 2 + (["Hubspot_create_contact"],)
    + (["data_analysis", "code_interpreter"],) + (["canvas", "canvas"],)
    + (["web_search", "Hubspot_create_contact", "Slack_send_message"],)
)  # fmt: skip


def fine_amount(amount: float, pick: int, decimals: int = 8) -> float:
    """``amount`` (USD >= 0) as a producer might send it, chosen by ``pick`` (any int drawn
    from the seed), so that the money rule — each amount to whole nano-dollars, half to
    even — is exercised by every stream:

    * ``pick % 8`` in 0, 1: an exact half-nano tie above an odd nano-dollar
      (``0.0000001235`` → 124 nano: rounds up);
    * 2: an exact half-nano tie just above half of an even micro-dollar
      (``0.0000025005`` → 2500 nano: rounds down; alone in a cell it shows
      ``0.000002``, where the exact amount would show ``0.000003``);
    * 3, 4: 12 decimals, the last three not all zero;
    * otherwise ``decimals`` decimals, as a price list would give.

    A reader that skips the per-amount rounding, or rounds half up, shows other cells:
    where a kind-2 amount is a row's only amount past the cent, and in busy rows, whose
    ties lean up (two in three). Every value is a double whose shortest form (what a
    JSON encoder writes) is that decimal.
    """
    kind = pick % 8
    nano = int(amount * 1e9)
    if kind <= 1:
        return float(f"{nano | 1}.5e-9")
    if kind == 2:
        return float(f"{nano // 2000 * 2000 + 500}.5e-9")
    if kind <= 4:  # 1 to 999 pico-dollars past the nano-dollar
        return float(f"{nano}.{pick % 999 + 1:03d}e-9")
    return round(amount, decimals)


def _lognormal_table(rng: random.Random, median: float, sigma: float, cap: int) -> list[int]:
    mu = math.log(median)
    return [min(cap, max(1, int(rng.lognormvariate(mu, sigma)))) for _ in range(_TABLE)]


class ActivityGenerator:
    """Builds activity events for workspaces chosen by their activity weight."""

    def __init__(self, world: list[Workspace], rng: random.Random, tag: str) -> None:
        self.world = world
        self.rng = rng
        self.random = rng.random
        self.render_varied = TimestampRenderer(rng).render_varied
        self.tag = tag
        self.counters = [0] * len(world)
        self.ws_cum = tuple(accumulate(ws.activity_weight for ws in world))
        self.prompts = _lognormal_table(rng, 1200.0, 1.0, 180_000)
        self.completions = _lognormal_table(rng, 350.0, 0.9, 16_000)
        # Building a fresh usage object per event costs more than the rest of the event;
        # a table per model keeps a realistic spread (heavy tail included) at no cost.
        self.usage_tables: dict[str, list[dict[str, Any]]] = {}

    def next_event(self, at_ms: int) -> tuple[Workspace, str, dict[str, Any]]:
        """One activity event at about ``at_ms``: (workspace, type, event)."""
        rnd = self.random
        ws = self.world[bisect_right(self.ws_cum, rnd() * self.ws_cum[-1])]
        roll = rnd()
        if roll < 0.08 and ws.api_keys.pool:
            return ws, "api_request", self.api_request(ws, at_ms)
        if roll < 0.115 and ws.payg_users:
            return ws, "payg_consumption", self.payg(ws, at_ms)
        return ws, "message", self.message(ws, at_ms)

    def _head(self, ws: Workspace, at_ms: int) -> tuple[str, str, int]:
        """(event_id, occurred_at, instant) for the next event of ``ws`` near ``at_ms``."""
        count = self.counters[ws.index]
        self.counters[ws.index] = count + 1
        return f"{self.tag}.e{count}", *self.render_varied(at_ms)

    def usage(self, model: ModelSpec) -> dict[str, Any]:
        """A usage object drawn from the model's table (shared: treat it as read-only)."""
        table = self.usage_tables.get(model.name)
        if table is None:
            table = self.usage_tables[model.name] = [
                self._new_usage(model) for _ in range(_USAGES_PER_MODEL)
            ]
        return table[int(self.random() * _USAGES_PER_MODEL)]

    def _new_usage(self, model: ModelSpec) -> dict[str, Any]:
        """Token usage with cache reads/writes inside ``prompt_tokens``, and its cost."""
        rnd = self.random
        prompt = self.prompts[int(rnd() * _TABLE)]
        completion = self.completions[int(rnd() * _TABLE)]
        cached = int(prompt * rnd() * 0.9) if rnd() < 0.4 else 0
        creation = int((prompt - cached) * rnd() * 0.3) if rnd() < 0.15 else 0
        cost = (
            prompt - cached - creation + 0.1 * cached + 1.25 * creation
        ) * model.input_price + completion * model.output_price
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "cached_prompt_tokens": cached,
            "cache_creation_tokens": creation,
            "cost_usd": fine_amount(cost, prompt + completion),
        }
        if not cached and rnd() < 0.5:  # absent counts default to 0
            del usage["cached_prompt_tokens"]
        if not creation and rnd() < 0.5:
            del usage["cache_creation_tokens"]
        return usage

    def _model_fields(
        self, ws: Workspace, event: dict[str, Any], model: ModelSpec, at: int
    ) -> None:
        """``byok``/``deployment``: BYOK workspaces mostly call their own deployments."""
        rnd = self.random
        if ws.byok_at(at) and rnd() < 0.85:
            deployments = model.deployments
            event["byok"] = True
            event["deployment"] = (
                deployments[int(rnd() * len(deployments))] if rnd() < 0.9 else None
            )
        elif rnd() < 0.7:  # otherwise left out: the default is false / null
            event["byok"] = False
            event["deployment"] = None

    def message(self, ws: Workspace, at_ms: int) -> dict[str, Any]:
        # Inlined head and sampling: this method is most of the simulator's run time.
        rnd = self.random
        count = self.counters[ws.index]
        self.counters[ws.index] = count + 1
        occurred_at, at = self.render_varied(at_ms)
        users = ws.users
        user_id = users.ids[users.sample(rnd, at)]
        roll = rnd()
        agent = -1
        assistant_id = project_id = None
        if roll < 0.39:
            if roll < 0.27 and ws.agents.pool:
                agent = ws.agents.sample(rnd, at)
                assistant_id = ws.agents.ids[agent]
            if roll >= 0.25 and ws.projects.pool:  # 0.25-0.27: an agent inside a project
                project_id = ws.projects.ids[ws.projects.sample(rnd, at)]
        if agent >= 0 and rnd() < 0.7:
            model = ws.models[ws.agent_models[agent]]
        else:
            cum = ws.model_cum_weights
            model = ws.models[bisect_right(cum, rnd() * cum[-1])]
        event: dict[str, Any] = {
            "event_id": f"{self.tag}.e{count}",
            "type": "message",
            "org_id": ws.org_id,
            "occurred_at": occurred_at,
            "user_id": user_id,
            "assistant_id": assistant_id,
            "project_id": project_id,
            "conversation_id": f"conv-{user_id}-{agent + 1}-{int(rnd() * 6)}",
            "model": model.name,
            "provider": model.provider,
        }
        roll = rnd()
        if roll < 0.05:
            event["conversation_id"] = None
        if ws.byok_at(at) and roll < 0.9:
            event["byok"] = True
            deployments = model.deployments
            event["deployment"] = deployments[int(rnd() * len(deployments))] if roll < 0.8 else None
        elif roll < 0.6:
            event["byok"] = False
            event["deployment"] = None
        source = _SOURCES[int(rnd() * len(_SOURCES))]
        if source is not None:
            event["source"] = source
        roll = rnd()
        actions = _ACTIONS[int(roll * len(_ACTIONS))]
        if actions or roll < 0.3:
            event["actions"] = actions
        roll = rnd()
        if roll < 0.97:
            event["requests"] = 1 if roll < 0.8 else 2 + int(roll * 100) % 4
        event["usage"] = self.usage(model)
        return event

    def api_request(self, ws: Workspace, at_ms: int) -> dict[str, Any]:
        rnd = self.random
        event_id, occurred_at, at = self._head(ws, at_ms)
        model = ws.models[ws.sample_model(rnd)]
        event: dict[str, Any] = {
            "event_id": event_id,
            "type": "api_request",
            "org_id": ws.org_id,
            "occurred_at": occurred_at,
            "api_key_id": ws.api_keys.ids[ws.api_keys.sample(rnd, at)],
            "model": model.name,
            "provider": model.provider,
        }
        self._model_fields(ws, event, model, at)
        source = _API_SOURCES[int(rnd() * len(_API_SOURCES))]
        if source is not None:
            event["source"] = source
        event["requests"] = 1 if rnd() < 0.7 else 1 + int(rnd() * 20)
        event["usage"] = self.usage(model)
        return event

    def payg(self, ws: Workspace, at_ms: int) -> dict[str, Any]:
        rnd = self.random
        event_id, occurred_at, _ = self._head(ws, at_ms)
        if rnd() < 0.9:
            user = ws.payg_users[int(rnd() * len(ws.payg_users))]
        else:  # extra usage by someone without a PAYG licence (no limit: empty utilisation)
            user = int(rnd() * len(ws.users))
        # Mostly cents; some sub-micro-dollar amounts so 6-decimal rounding meets ties,
        # and of those, some past the nano-dollar (half-nano ties too).
        if rnd() < 0.85:
            amount = round(rnd() * 4, 2)
        else:
            fine = rnd()
            amount = fine_amount(fine * 1e-4, int(fine * 2**30), decimals=7)
        return {
            "event_id": event_id,
            "type": "payg_consumption",
            "org_id": ws.org_id,
            "occurred_at": occurred_at,
            "user_id": ws.users.ids[user],
            "amount": amount,
        }
