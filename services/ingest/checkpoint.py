"""What ingest may commit to Kafka, and what it has committed.

Ingest folds every record it fetches, in order, into its writers; a record's offset may
be committed once the tables hold it. So per partition the checkpoint keeps the next
offset after the last record handed to the writers (:meth:`advance`, called once they
hold the batch) and the offset last committed. A flush records :meth:`positions` in the
tables' transactions; after it, :meth:`committable` says which offsets moved since the
last commit. A revoked partition is forgotten: its next owner starts from the commit
and skips by the tables' positions what was made durable after it.

(The exporter's ``OffsetTracker`` is the same idea for requests that finish out of
order; ingest's records are all applied in order, so its checkpoint needs no pending
set.)
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping

from aiokafka import TopicPartition

Source = tuple[str, int]


class Checkpoint:
    def __init__(self) -> None:
        self._next: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}

    def advance(self, positions: Mapping[TopicPartition, int]) -> None:
        """The writers hold every record before these offsets (next offsets to fetch). An
        offset lower than before (a partition fetched again from an older commit without a
        revoke in between) is taken as is: committing it re-delivers records that the
        tables' positions then skip, which is harmless; skipping records would not be."""
        self._next.update(positions)

    def positions(self) -> dict[Source, int]:
        """What the pending state covers, as the tables record it: (topic, partition)."""
        return {(tp.topic, tp.partition): offset for tp, offset in self._next.items()}

    def next_offsets(self) -> dict[TopicPartition, int]:
        return dict(self._next)

    def lag(self, highwater: Callable[[TopicPartition], int | None]) -> int:
        """Records behind the high watermarks (partitions without one count nothing)."""
        total = 0
        for tp, offset in self._next.items():
            mark = highwater(tp)
            if mark is not None:
                total += mark - offset
        return total

    def committable(self, assigned: Collection[TopicPartition]) -> dict[TopicPartition, int]:
        """Offsets of the ``assigned`` partitions that moved since their last commit. Call
        it only once the state they cover is durable."""
        return {
            tp: offset
            for tp, offset in self._next.items()
            if tp in assigned and self._committed.get(tp) != offset
        }

    def committed(self, offsets: Mapping[TopicPartition, int]) -> None:
        self._committed.update(offsets)

    def last_committed(self) -> dict[TopicPartition, int]:
        return dict(self._committed)

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions revoked: their next owner starts from what was committed."""
        for tp in partitions:
            self._next.pop(tp, None)
            self._committed.pop(tp, None)
