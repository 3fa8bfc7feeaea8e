"""Storage format 1 -> 2: there is no in-place migration, the topic is the source.

Format 1 (JSON day heads, fact segments and dimension histories under ``v1/orgs/{org}/``;
its code is gone) is not read by format-2 code. A workspace that has format-1 state and
no format-2 tables would look empty to it, so :func:`check_storage_format` refuses to
start on such a store and says how to rebuild: ``usage-export replay`` folds the events
still in the topic into the new tables.
"""

from __future__ import annotations

import logging
from typing import Final

from shared.adapters.object_store import ObjectStore
from shared.columnar.tables import ROOT as V2_ROOT
from shared.errors import StorageFormatMismatch
from shared.retry import Failure, retry, store_backoff
from shared.settings import Settings

log = logging.getLogger(__name__)

#: Where format 1 kept each workspace's state.
V1_ROOT: Final = "v1/orgs/"
_NAMED: Final = 5


async def format1_only_workspaces(store: ObjectStore) -> list[str]:
    """Workspaces with format-1 state in the aggregates bucket and no format-2 tables."""
    v1 = {_last_segment(prefix) for prefix in await store.list_prefixes(V1_ROOT)}
    v2 = {_last_segment(prefix) for prefix in await store.list_prefixes(V2_ROOT)}
    # A store with directories (SeaweedFS) keeps listing a prefix whose objects were all
    # deleted: only a workspace with an object left counts. Listed only for candidates.
    return sorted([org for org in v1 - v2 if await store.list_objects(f"{V1_ROOT}{org}/")])


async def check_storage_format(store: ObjectStore) -> None:
    """Raise :class:`StorageFormatMismatch` if any workspace holds only format-1 state."""
    stale = await format1_only_workspaces(store)
    if not stale:
        return
    more = len(stale) - _NAMED
    named = ", ".join(stale[:_NAMED]) + (f" and {more} more" if more > 0 else "")
    raise StorageFormatMismatch(
        f"bucket {store.bucket!r} holds storage format 1 ({V1_ROOT}) for {len(stale)} "
        f"workspace(s) without format-2 tables ({V2_ROOT}): {named}. This version reads only "
        "format 2 and does not convert the old layout: rebuild it from the events topic with "
        "`usage-export replay --from DAY --to DAY` (the days still in the topic), then delete "
        f"the {V1_ROOT} prefix; see docs/storage.md, 'Migration'."
    )


async def wait_for_storage_format(store: ObjectStore, settings: Settings) -> None:
    """:func:`check_storage_format`, waiting out a store that is unavailable (as every
    store call of the services does), with the store's retry backoff."""

    def warn(failure: Failure) -> None:
        log.warning(
            "cannot check the storage format yet (%s); retrying in %.1fs",
            failure.error,
            failure.delay_s,
        )

    await retry(lambda: check_storage_format(store), store_backoff(settings), on_retry=warn)


def _last_segment(prefix: str) -> str:
    return prefix.rstrip("/").rsplit("/", 1)[-1]
