"""The fault suite's seed: one per run, drawn at random unless ``USAGE_TEST_SEED`` sets
it, so that each run tries other examples and a failure can be replayed.

Every random choice of the suite derives from it: the kill moments and simulated streams
of the scenarios that draw them (:func:`scenario_random`), and the examples of the
Hypothesis scenarios (the suite's ``conftest`` seeds them with it, which overrides a
``derandomize`` setting). A failing test's report ends with the line to replay it:
``USAGE_TEST_SEED=<seed> pytest …``.
"""

from __future__ import annotations

import functools
import os
import random

SEED_VARIABLE = "USAGE_TEST_SEED"


@functools.cache
def suite_seed() -> int:
    """This run's seed: ``USAGE_TEST_SEED`` if set, else a random one (then fixed)."""
    value = os.environ.get(SEED_VARIABLE, "").strip()
    if value:
        return int(value)
    return random.SystemRandom().randrange(2**32)


def scenario_random(name: str) -> tuple[int, random.Random]:
    """(a seed for the scenario ``name``, a generator from it): the same for the same
    suite seed, different across scenarios."""
    seed = random.Random(f"{suite_seed()}/{name}").randrange(2**32)
    return seed, random.Random(seed)


def replay_hint() -> str:
    return f"replay with {SEED_VARIABLE}={suite_seed()}"
