"""The simulated workspaces and their entity tables (the only state that grows with size).

Activity over entities is heavy-tailed: each table samples with Zipf weights over a
shuffled order, so ids do not predict rank. Each entity has a life span — joining near
the start or later, sometimes deleted — and sampling prefers entities alive at the
event's time without insisting, so a few events come from deleted or not-yet-upserted
entities, as they do in real logs. Some entities are *ghosts* (activity, never an
upsert) and some are *dormant* (upserts, never activity).
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate

from shared.simulation.config import SimConfig

DAY_MS = 86_400_000
_HOUR_MS = 3_600_000
_FOREVER = 2**62


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    provider: str
    input_price: float  # USD per token
    output_price: float
    deployments: tuple[str, ...]


_CATALOG: tuple[tuple[str, str, float, float], ...] = (
    ("gpt-4.1", "openai", 2.0, 8.0), ("claude-sonnet-4", "anthropic", 3.0, 15.0),
    ("gpt-4.1-mini", "openai", 0.4, 1.6), ("gemini-2.5-pro", "google", 1.25, 10.0),
    ("gpt-4o", "openai", 2.5, 10.0), ("claude-3.5-haiku", "anthropic", 0.8, 4.0),
    ("o3", "openai", 2.0, 8.0), ("mistral-large", "mistral", 2.0, 6.0),
    ("gemini-2.5-flash", "google", 0.3, 2.5), ("claude-opus-4.1", "anthropic", 15.0, 75.0),
    ("llama-3.3-70b", "meta", 0.6, 0.6), ("o4-mini", "openai", 1.1, 4.4),
    ("deepseek-r1", "deepseek", 0.55, 2.19), ("gpt-5", "openai", 1.25, 10.0),
    ("command-r-plus", "cohere", 2.5, 10.0), ("mistral-medium-3", "mistral", 0.4, 2.0),
    ("grok-3", "xai", 3.0, 15.0), ("qwen3-235b", "alibaba", 0.2, 0.6),
    ("gpt-oss-120b", "openai", 0.15, 0.6), ("sonar-pro", "perplexity", 3.0, 15.0),
)  # fmt: skip
_REGIONS = ("eastus", "westeurope", "us-east-1", "eu-central-1", "swedencentral")


@dataclass(frozen=True, slots=True)
class EntityTable:
    """Ids of one kind of entity, their life spans and a Zipf sampler over the active ones."""

    ids: tuple[str, ...]
    joined_ms: tuple[int, ...]  # first upsert (ghosts: the start, they never get one)
    deleted_ms: tuple[int | None, ...]
    ghosts: frozenset[int]  # indices with activity but no upsert
    dormant: frozenset[int]  # indices with upserts but no activity
    pool: tuple[int, ...]  # indices that may have activity
    cum_weights: tuple[float, ...]  # cumulative Zipf weights over ``pool``
    until_ms: tuple[int, ...]  # deletion instant, or a time after every event

    def sample(self, random: Callable[[], float], at_ms: int) -> int:
        """An index, favouring entities alive at ``at_ms`` (three tries, then any)."""
        pool, cum, joined, until = self.pool, self.cum_weights, self.joined_ms, self.until_ms
        total = cum[-1]
        index = pool[bisect_right(cum, random() * total)]
        if joined[index] <= at_ms < until[index]:
            return index
        index = pool[bisect_right(cum, random() * total)]
        if joined[index] <= at_ms < until[index]:
            return index
        return pool[bisect_right(cum, random() * total)]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True, slots=True)
class Workspace:
    org_id: str
    index: int
    activity_weight: float
    sends_settings: bool
    byok_since_ms: int | None  # workspace setting byok=true from then on
    private_since_ms: int | None  # workspace setting user_level_data=false from then on
    users: EntityTable
    agents: EntityTable
    projects: EntityTable
    api_keys: EntityTable
    models: tuple[ModelSpec, ...]
    model_cum_weights: tuple[float, ...]
    agent_models: tuple[int, ...]  # preferred model of each agent
    payg_users: tuple[int, ...]  # users with a PAYG licence (they spend extra usage)

    def byok_at(self, at_ms: int) -> bool:
        return self.byok_since_ms is not None and at_ms >= self.byok_since_ms

    def sample_model(self, random: Callable[[], float]) -> int:
        cum = self.model_cum_weights
        return bisect_right(cum, random() * cum[-1])


def zipf_cum_weights(count: int, exponent: float, rng: random.Random) -> tuple[float, ...]:
    """Cumulative weights ``1/rank**exponent`` with ranks shuffled over the positions."""
    ranks = list(range(1, count + 1))
    rng.shuffle(ranks)
    return tuple(accumulate(1.0 / rank**exponent for rank in ranks))


def _table(
    rng: random.Random,
    config: SimConfig,
    count: int,
    id_format: str,
    *,
    late_share: float,
    delete_share: float,
    ghost_share: float,
    dormant_share: float,
    exponent: float,
) -> EntityTable:
    start, end = config.start_ms, config.end_ms
    onboarding = min(2 * DAY_MS, (end - start) // 20)
    ids, joined, deleted, ghosts, dormant = [], [], [], set(), set()
    for index in range(count):
        ids.append(id_format.format(index + 1))
        late = rng.random() < late_share
        join = rng.randint(start, end - 1) if late else start + rng.randint(0, onboarding)
        roll = rng.random()
        if roll < ghost_share:
            ghosts.add(index)
            join = start
        elif roll < ghost_share + dormant_share:
            dormant.add(index)
        joined.append(join)
        deletable = index not in ghosts and join + _HOUR_MS < end
        gone = (
            rng.randint(join + _HOUR_MS, end) if deletable and rng.random() < delete_share else None
        )
        deleted.append(gone)
    pool = [i for i in range(count) if i not in dormant] or list(range(count))
    return EntityTable(
        ids=tuple(ids),
        joined_ms=tuple(joined),
        deleted_ms=tuple(deleted),
        ghosts=frozenset(ghosts),
        dormant=frozenset(dormant),
        pool=tuple(pool),
        cum_weights=zipf_cum_weights(len(pool), exponent, rng) if pool else (),
        until_ms=tuple(_FOREVER if gone is None else gone for gone in deleted),
    )


def _models(rng: random.Random, count: int) -> tuple[ModelSpec, ...]:
    chosen = list(_CATALOG)
    rng.shuffle(chosen)
    models = []
    for position in range(count):
        name, provider, price_in, price_out = chosen[position % len(chosen)]
        if position >= len(chosen):
            name = f"{name}-ft{position // len(chosen)}"
        deployments = tuple(f"{rng.choice(_REGIONS)}-{name}" for _ in range(rng.randint(1, 2)))
        models.append(ModelSpec(name, provider, price_in * 1e-6, price_out * 1e-6, deployments))
    return tuple(models)


def _settings_plan(
    rng: random.Random, config: SimConfig, index: int
) -> tuple[bool, int | None, int | None]:
    """(sends settings, byok since, private since) with the first three workspaces fixed."""
    start, end = config.start_ms, config.end_ms
    third, half = start + (end - start) // 3, start + (end - start) // 2
    if index == 0:
        return True, third, None
    if index == 1:
        return False, None, None
    if index == 2:
        return True, None, half
    sends = rng.random() < 0.85
    if not sends:
        return False, None, None
    byok = start if rng.random() < 0.7 else rng.randint(start, end)
    private = start if rng.random() < 0.7 else rng.randint(start, end)
    return (
        True,
        byok if rng.random() < config.byok_share else None,
        private if rng.random() < config.private_share else None,
    )


def build_world(config: SimConfig) -> list[Workspace]:
    """The workspaces of a resolved config, deterministic in ``config.seed``."""
    rng = random.Random(f"{config.seed}:world")
    world = []
    for index in range(config.orgs):
        style = index % 3  # vary id shapes across workspaces; all match the id pattern
        user_format = ("user-{:05d}", "u.{}", "usr:{:x}")[style]
        sends, byok_since, private_since = _settings_plan(rng, config, index)
        # One _table call per entity with its own tuning, spelled out so each reads alone.
        users = _table(
            rng,
            config,
            config.users,
            user_format,
            late_share=0.15,
            delete_share=0.03,
            ghost_share=0.03,
            dormant_share=0.05,
            exponent=1.05,
        )
        agents = _table(
            rng,
            config,
            config.agents,
            ("agent-{:04d}", "asst_{}", "a:{}")[style],
            late_share=0.3,
            delete_share=0.05,
            ghost_share=0.05,
            dormant_share=0.1,
            exponent=1.2,
        )
        projects = _table(
            rng,
            config,
            config.projects,
            "proj-{:04d}",
            late_share=0.3,
            delete_share=0.05,
            ghost_share=0.05,
            dormant_share=0.1,
            exponent=1.1,
        )
        api_keys = _table(
            rng,
            config,
            config.api_keys,
            "key-{:03d}",
            late_share=0.3,
            delete_share=0.1,
            ghost_share=0.05,
            dormant_share=0.1,
            exponent=1.2,
        )
        models = _models(rng, config.models)
        world.append(
            Workspace(
                org_id=f"{config.org_prefix}-{index + 1:04d}",
                index=index,
                activity_weight=1.0 / (index + 1) ** 0.7,
                sends_settings=sends,
                byok_since_ms=byok_since,
                private_since_ms=private_since,
                users=users,
                agents=agents,
                projects=projects,
                api_keys=api_keys,
                models=models,
                model_cum_weights=zipf_cum_weights(len(models), 1.3, rng),
                agent_models=tuple(rng.randrange(len(models)) for _ in range(config.agents)),
                payg_users=tuple(i for i in range(config.users) if rng.random() < 0.2),
            )
        )
    return world
