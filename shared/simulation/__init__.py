"""A deterministic simulator of contract §2 usage events, for tests, demos and load.

``simulate(SimConfig(seed=7, orgs=3, events=50_000))`` yields :class:`SimRecord` s —
Kafka key and value bytes, tagged ``valid``, ``duplicate`` or ``invalid`` (with a
reason) — lazily, so five million events cost no more memory than fifty. The same
config (with ``end`` given) yields the same bytes on every run and machine.

Modules: ``config`` (knobs), ``world`` (workspaces and entity tables), ``names`` (text
that stresses CSV quoting), ``timefmt`` (RFC 3339 rendering), ``timeline`` (when
activity happens), ``dimensions`` (upserts and settings), ``activity`` (messages, API
requests, extra usage), ``invalid`` (malformed events), ``stream`` (merging and
disordering).
"""

from shared.simulation.config import SimConfig
from shared.simulation.stream import SimRecord, dimension_schedule, simulate, stream_tag
from shared.simulation.world import EntityTable, ModelSpec, Workspace, build_world

__all__ = [
    "EntityTable",
    "ModelSpec",
    "SimConfig",
    "SimRecord",
    "Workspace",
    "build_world",
    "dimension_schedule",
    "simulate",
    "stream_tag",
]
