"""Ingest's checkpoint: what may be committed, once, for the partitions still assigned."""

from __future__ import annotations

from aiokafka import TopicPartition

from services.ingest.checkpoint import Checkpoint

A = TopicPartition("usage.events", 0)
B = TopicPartition("usage.events", 1)


def test_committable_offsets_move_once_and_only_for_assigned_partitions() -> None:
    checkpoint = Checkpoint()
    assert checkpoint.committable({A, B}) == {}
    checkpoint.advance({A: 10, B: 3})
    assert checkpoint.positions() == {("usage.events", 0): 10, ("usage.events", 1): 3}
    assert checkpoint.committable({A}) == {A: 10}, "B is no longer assigned"
    checkpoint.committed({A: 10})
    assert checkpoint.committable({A, B}) == {B: 3}, "A did not move since its commit"
    checkpoint.advance({A: 12})
    assert checkpoint.committable({A, B}) == {A: 12, B: 3}


def test_a_revoked_partition_is_forgotten() -> None:
    checkpoint = Checkpoint()
    checkpoint.advance({A: 10, B: 3})
    checkpoint.committed({A: 10, B: 3})
    checkpoint.forget({A})
    assert checkpoint.next_offsets() == {B: 3}
    assert checkpoint.last_committed() == {B: 3}
    # Assigned again later from an older commit: the new owner may start lower.
    checkpoint.advance({A: 4})
    assert checkpoint.committable({A, B}) == {A: 4}
    # Fetched again from an older commit without a revoke: the lower offset is committed
    # (re-delivery is harmless; the tables' positions skip what they hold).
    checkpoint.advance({B: 2})
    assert checkpoint.committable({A, B}) == {A: 4, B: 2}


def test_lag_counts_only_partitions_with_a_high_watermark() -> None:
    checkpoint = Checkpoint()
    checkpoint.advance({A: 10, B: 3})
    marks = {A: 25}
    assert checkpoint.lag(marks.get) == 15
