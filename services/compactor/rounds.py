"""The compactor's loop: a round every ``compaction_interval_s`` over the workspaces with
new facts commits, the full pass every ``janitor_interval_s`` (and first, at start-up).

A round costs one LIST of the workspaces plus one LIST per workspace of the shard
(``ChangedWorkspaces``), and work in proportion to what changed: a workspace nobody
wrote to is not opened. The full pass opens every workspace of the shard.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from services.compactor.changes import ChangedWorkspaces
from services.compactor.janitor import Janitor, Sweep
from services.compactor.metrics import CompactorMetrics, PassKind
from services.compactor.shard import Shard
from shared.adapters.object_store import ObjectStore
from shared.clock import Clock, system_clock
from shared.columnar.tables import STORE_ERRORS, workspace_ids
from shared.settings import Settings

log = logging.getLogger(__name__)


class Compactor:
    def __init__(
        self,
        settings: Settings,
        store: ObjectStore,
        janitor: Janitor,
        *,
        shard: Shard | None = None,
        metrics: CompactorMetrics | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self._settings = settings
        self._store = store
        self._janitor = janitor
        self._shard = shard or Shard.of(settings)
        self._metrics = metrics
        self._clock = clock
        self._changes = ChangedWorkspaces(store)

    async def run(self, stop: asyncio.Event) -> None:
        """Rounds until ``stop`` is set; a pass in flight stops after its workspace."""
        loop = asyncio.get_running_loop()
        next_full = loop.time()
        while not stop.is_set():
            try:
                if loop.time() >= next_full:
                    next_full = loop.time() + self._settings.janitor_interval_s
                    await self.full_pass(stop)
                else:
                    await self.round(stop)
            except STORE_ERRORS:
                if self._metrics is not None:
                    self._metrics.failures.inc()
                log.warning("compactor pass failed; will retry", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._settings.compaction_interval_s)

    async def round(self, stop: asyncio.Event | None = None) -> Sweep:
        """Tidy the shard's workspaces whose facts have new commits (every one at the
        first look), and those whose last round was refused part way."""
        changed = await self._changes.among(await self._workspaces())
        if self._metrics is not None:
            self._metrics.changed.inc(len(changed))
        began = time.monotonic()
        done = await self._janitor.tidy(changed, self._clock(), stop=stop)
        self._observe("round", done, time.monotonic() - began)
        return done

    async def full_pass(self, stop: asyncio.Event | None = None) -> Sweep:
        """Every workspace of the shard: tidying, retention and vacuum."""
        orgs = await self._workspaces()
        # What is committed now is covered by this pass: the next round looks past it.
        await self._changes.among(orgs)
        began = time.monotonic()
        done = await self._janitor.sweep(self._clock(), orgs, stop=stop)
        self._observe("full", done, time.monotonic() - began)
        return done

    async def _workspaces(self) -> list[str]:
        return self._shard.select(await workspace_ids(self._store))

    def _observe(self, kind: PassKind, done: Sweep, seconds: float) -> None:
        if self._metrics is not None:
            self._metrics.observe(kind, done, seconds)
        busy = done.compacted_days or done.merged_months or done.rolled_up_files or done.fenced
        if kind == "full" or busy:
            log.info("compactor %s pass (shard %s, %.1f s): %s", kind, self._shard, seconds, done)
