"""Commits that are not an ingest flush: replacing whole days of a facts table, and adding
rows without Kafka positions (``usage-export replay``).

Both record ``WRITER_APP_ID`` like every writer's commit (``shared.columnar.tables``), so
they are serialized with a live ingest's commits to the same table: whichever commits
second against an older snapshot is refused, gets :class:`~shared.errors.FencedOut`, and
must reload and recompute. Neither records a Kafka position: a replay reads the topic
without a consumer group, and ingest's positions stay what ingest made durable (rows it
meets again later are dropped by ``event_id``).

A replacement commit removes every file of the replaced days' partitions as of the
snapshot and adds the new rows' files, in one Delta commit: a reader sees the old days or
the new ones, never a mix. delta-rs refuses a concurrent commit with one of several
messages ("Concurrent transaction failed", "a concurrent transactions added new data", "a
concurrent transaction deleted data this operation read"), all of them a conflict.

delta-rs blocks: these functions are synchronous; call them in a worker thread.
"""

from __future__ import annotations

from datetime import date

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError

from shared.columnar.tables import TXN_CONFLICT, WRITER_APP_ID
from shared.errors import FencedOut


def days_predicate(first_day: date, last_day: date) -> str:
    """The Delta predicate selecting the ``day`` partitions ``first_day..last_day``."""
    if last_day < first_day:
        raise ValueError(f"{last_day} is before {first_day}")
    return f"day >= '{first_day.isoformat()}' AND day <= '{last_day.isoformat()}'"


def replace_days(table: DeltaTable, first_day: date, last_day: date, rows: pa.Table) -> None:
    """Replace the facts of the UTC days ``first_day..last_day`` in ``table`` by ``rows``
    (all of whose ``day`` must be in that range; no rows empties the days), in one commit
    against ``table``'s snapshot. Raises :class:`FencedOut` if anything was committed to
    the table since that snapshot."""
    _commit(table, rows, predicate=days_predicate(first_day, last_day))


def append_rows(table: DeltaTable, rows: pa.Table) -> None:
    """Add ``rows`` to ``table`` in one commit against its snapshot, recording no Kafka
    position. Raises :class:`FencedOut` like :func:`replace_days`."""
    _commit(table, rows, predicate=None)


def _commit(table: DeltaTable, rows: pa.Table, *, predicate: str | None) -> None:
    snapshot = table.version()
    properties = CommitProperties(app_transactions=[Transaction(WRITER_APP_ID, snapshot + 1)])
    try:
        if predicate is None:
            write_deltalake(table, rows, mode="append", commit_properties=properties)
        else:
            write_deltalake(
                table, rows, mode="overwrite", predicate=predicate, commit_properties=properties
            )
    except CommitFailedError as exc:
        if TXN_CONFLICT in str(exc).lower():
            raise FencedOut(
                f"{table.table_uri}: another writer committed since version {snapshot}; "
                "nothing of this commit is visible"
            ) from exc
        raise
