"""Commits that are not an ingest flush: replacing whole days of a facts table, adding
rows without Kafka positions (``usage-export replay``), and the janitor's rewrites of
spans that change no content (compacting a day's files, merging a closed month).

Both record ``WRITER_APP_ID`` like every writer's commit (``shared.columnar.tables``), so
they are serialized with a live ingest's commits to the same table: whichever commits
second against an older snapshot is refused, gets :class:`~shared.errors.FencedOut`, and
must reload and recompute. The span rewrites (:func:`rewrite_spans`) do not record it:
they change no content, so they need not fence ingest, and delta-rs's own conflict check
is enough (below). Neither records a Kafka position: a replay reads the topic
without a consumer group, and ingest's positions stay what ingest made durable (rows it
meets again later are dropped by ``event_id``).

A replacement commit removes every file of the replaced days' partitions as of the
snapshot and adds the new rows' files, in one Delta commit: a reader sees the old days or
the new ones, never a mix. delta-rs refuses a concurrent commit with one of several
messages ("Concurrent transaction failed", "a concurrent transactions added new data", "a
concurrent transaction deleted data this operation read"), all of them a conflict.

A span rewrite reads exactly the files of its spans and removes exactly those (its
predicate names partitions only). delta-rs refuses it when a commit since its snapshot
added a file to one of those spans ("a concurrent transactions added new data": that
file's rows would be lost) or removed one of its files (another janitor's rewrite); an
append to any other span does not stop it. An ingest commit made against a snapshot older
than a rewrite is refused in turn ("deleted data this operation read") and rebases.
Measured in ``tests/unit/test_columnar_rewrite.py``.

delta-rs blocks: these functions are synchronous; call them in a worker thread.
"""

from __future__ import annotations

from datetime import date
from typing import Final

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError

from shared.columnar.schema import FACTS, SPAN, with_spans
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
    _commit(table, with_spans(rows), predicate=days_predicate(first_day, last_day))


def append_rows(table: DeltaTable, rows: pa.Table) -> None:
    """Add ``rows`` (FACTS or DIMENSIONS) to ``table`` in one commit against its snapshot,
    recording no Kafka position. Raises :class:`FencedOut` like :func:`replace_days`."""
    is_facts = SPAN in table.metadata().partition_columns
    _commit(table, with_spans(rows) if is_facts else rows, predicate=None)


def span_rows(table: DeltaTable, spans: list[str]) -> pa.Table:
    """The FACTS rows of exactly the files of ``spans`` in ``table``'s snapshot, in time
    order (blocking)."""
    if not spans:
        return FACTS.empty_table()
    dataset = table.to_pyarrow_dataset(file_pruning_predicate=[(SPAN, "in", spans)])
    rows = dataset.to_table(columns=FACTS.names).cast(FACTS)
    return rows.sort_by([("occurred_ms", "ascending"), ("event_id", "ascending")])


def rewrite_spans(table: DeltaTable, spans: list[str], rows: pa.Table, *, month: bool) -> None:
    """Replace every file of ``spans`` by ``rows`` (FACTS, what :func:`span_rows` read from
    this snapshot: the same content) in one commit, as one span: each row's month if
    ``month``, else its day (then ``rows`` must be of one day). Raises
    :class:`FencedOut` when delta-rs refuses it (see the module docstring)."""
    if not spans:
        raise ValueError("a rewrite names the spans it replaces")
    stored = with_spans(rows, month=month)
    # The predicate must also match the new rows' span (delta-rs checks that it does).
    replaced = sorted(set(spans) | set(stored.column(SPAN).unique().to_pylist()))
    predicate = " OR ".join(f"{SPAN} = '{span}'" for span in replaced)
    _commit(table, stored, predicate=predicate, fence=False)


#: A rewritten file's row groups (a merged month's rows are sorted by time): groups of this
#: many rows, so a read of a few days of a merged month skips the other groups by their
#: statistics (delta-rs's default puts up to a million rows in one group).
REWRITE_ROW_GROUP: Final = 65_536
_REWRITTEN: Final = WriterProperties(max_row_group_size=REWRITE_ROW_GROUP)


def _commit(
    table: DeltaTable, rows: pa.Table, *, predicate: str | None, fence: bool = True
) -> None:
    snapshot = table.version()
    transactions = [Transaction(WRITER_APP_ID, snapshot + 1)] if fence else []
    properties = CommitProperties(app_transactions=transactions)
    try:
        if predicate is None:
            write_deltalake(table, rows, mode="append", commit_properties=properties)
        else:
            write_deltalake(
                table,
                rows,
                mode="overwrite",
                predicate=predicate,
                commit_properties=properties,
                writer_properties=_REWRITTEN,
            )
    except CommitFailedError as exc:
        if TXN_CONFLICT in str(exc).lower():
            raise FencedOut(
                f"{table.table_uri}: another writer committed since version {snapshot}; "
                "nothing of this commit is visible"
            ) from exc
        raise
