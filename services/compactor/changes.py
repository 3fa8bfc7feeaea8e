"""Which workspaces' facts tables have new commits since the compactor last looked.

Ingest does not say what it wrote: the compactor finds out from the store. A Delta commit
is the object ``_delta_log/{version:020}.json``, and keys sort by version, so what came
after the last commit seen is one listing with ``start_after`` that commit's key (S3's
``StartAfter``): a request per workspace and round, whatever the length of the log. The
first look at a workspace starts from its last checkpoint (``_last_checkpoint``; a
checkpoint every 10 commits) and counts as a change: at start-up every workspace is
tidied once.

The compactor's own commits are new commits too: a tidied workspace is looked at once
more the next round (its tidying then finds nothing to do), which costs opening its
table, never a rewrite.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from typing import Final

from shared import codec
from shared.adapters.object_store import ObjectStore
from shared.columnar.tables import FACTS_TABLE, workspace_prefix

log = logging.getLogger(__name__)

_COMMIT: Final = re.compile(r"\d{20}\.json")
#: Listings in flight at once (one per workspace).
LIST_CONCURRENCY: Final = 16


def delta_log_prefix(org_id: str) -> str:
    return f"{workspace_prefix(org_id)}{FACTS_TABLE}/_delta_log/"


class ChangedWorkspaces:
    """Remembers, per workspace, the key of the last facts commit it has seen."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self._seen: dict[str, str | None] = {}  # org -> last commit key (None: none yet)
        self._gate = asyncio.Semaphore(LIST_CONCURRENCY)

    async def among(self, org_ids: Iterable[str]) -> list[str]:
        """Those of ``org_ids`` whose facts table has commits not seen before (and those
        never looked at), in their order. Workspaces no longer among them are forgotten.
        Raises what the store raised, remembering nothing new (the next call looks again
        from the same commits)."""
        orgs = list(org_ids)
        looks = await asyncio.gather(*(self._look(org) for org in orgs))
        self._seen = {org: last for org, (_, last) in zip(orgs, looks, strict=True)}
        return [org for org, (moved, _) in zip(orgs, looks, strict=True) if moved]

    async def _look(self, org: str) -> tuple[bool, str | None]:
        """(whether it moved, the key of its last commit now known)."""
        prefix = delta_log_prefix(org)
        first_look = org not in self._seen
        last = self._seen.get(org)
        after = await self._checkpoint_key(prefix) if first_look else last
        async with self._gate:
            listed = await self._store.list_objects(prefix, start_after=after)
        commits = [item.key for item in listed if _COMMIT.fullmatch(item.key[len(prefix) :])]
        return first_look or bool(commits), max(commits, default=last)

    async def _checkpoint_key(self, prefix: str) -> str | None:
        """Where a first listing of a log starts: its last checkpoint's version (the
        commits since are few), or its beginning."""
        async with self._gate:
            stored = await self._store.get(f"{prefix}_last_checkpoint")
        if stored is None:
            return None
        try:
            version = int(codec.loads(stored.body)["version"])
        except (ValueError, KeyError, TypeError):
            log.warning("compactor: unreadable %s_last_checkpoint; listing the whole log", prefix)
            return None
        return f"{prefix}{version:020d}"
