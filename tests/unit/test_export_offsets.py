"""Commits move only up to the lowest request not yet answered, per partition."""

from __future__ import annotations

from services.exporter.offsets import OffsetTracker


def test_commit_stops_at_the_lowest_unfinished_offset() -> None:
    tracker: OffsetTracker[int] = OffsetTracker()
    for offset in (10, 11, 12):
        tracker.started(0, offset)
    tracker.started(1, 5)
    assert tracker.committable() == {0: 10, 1: 5}
    tracker.committed({0: 10, 1: 5})
    tracker.finished(0, 11)  # a small request finished before the large one at 10
    assert tracker.committable() == {}
    tracker.finished(0, 10)
    assert tracker.committable() == {0: 12}
    tracker.finished(0, 12)
    tracker.finished(1, 5)
    assert tracker.committable() == {0: 13, 1: 6}
    assert tracker.pending() == 0


def test_revoked_partitions_are_forgotten() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.started("p0", 3)
    tracker.forget(["p0"])
    assert tracker.committable() == {}
    tracker.finished("p0", 3)  # a late finish of a forgotten request changes nothing
    assert tracker.committable() == {}
