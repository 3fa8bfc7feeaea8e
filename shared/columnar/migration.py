"""Older storage formats -> 3: there is no in-place migration, the topic is the source.

Format 1 (JSON day heads, fact segments and dimension histories under ``v1/orgs/{org}/``)
and format 2 (Delta tables under ``v2/workspaces/{org}/``, facts partitioned by day; the
code of both is gone) are not read by format-3 code. A workspace that has older state
and no format-3 tables would look empty to it, so :func:`check_storage_format` refuses
to start on such a store and says how to rebuild: ``usage-export replay`` folds the
events still in the topic into the new tables.
"""

from __future__ import annotations

import logging
from typing import Final

from shared.adapters.object_store import ObjectStore
from shared.columnar.tables import ROOT, workspace_ids
from shared.errors import StorageFormatMismatch
from shared.retry import Failure, retry, store_backoff
from shared.settings import Settings

log = logging.getLogger(__name__)

#: Where the older formats kept each workspace's state.
OLD_ROOTS: Final = ("v1/orgs/", "v2/workspaces/")
_NAMED: Final = 5


async def old_format_only_workspaces(store: ObjectStore) -> list[str]:
    """Workspaces with state of an older format in the aggregates bucket and no format-3
    tables."""
    current = set(await workspace_ids(store))
    stale: set[str] = set()
    for root in OLD_ROOTS:
        for prefix in await store.list_prefixes(root):
            org = _last_segment(prefix)
            # A store with directories (SeaweedFS) keeps listing a prefix whose objects
            # were all deleted: only a workspace with an object left counts.
            if org not in current and await store.list_objects(f"{root}{org}/"):
                stale.add(org)
    return sorted(stale)


async def check_storage_format(store: ObjectStore) -> None:
    """Raise :class:`StorageFormatMismatch` if any workspace holds only older state."""
    stale = await old_format_only_workspaces(store)
    if not stale:
        return
    more = len(stale) - _NAMED
    named = ", ".join(stale[:_NAMED]) + (f" and {more} more" if more > 0 else "")
    roots = " or ".join(OLD_ROOTS)
    raise StorageFormatMismatch(
        f"bucket {store.bucket!r} holds an older storage format ({roots}) for {len(stale)} "
        f"workspace(s) without format-3 tables ({ROOT}): {named}. This version reads only "
        "format 3 and does not convert old layouts: rebuild them from the events topic with "
        "`usage-export replay --from DAY --to DAY` (the days still in the topic), then delete "
        f"the old prefixes; see docs/storage.md, 'Migration'."
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
