"""The dedup index answers "seen before?" for whole batches: never a false "new", and
each candidate comes with the days where its stored twin may be."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.columnar.id_index import IdIndex, first_occurrences

IDS = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=40)


def index_of(ids: list[str], day: int = 0) -> IdIndex:
    index = IdIndex()
    index.add(ids, [day] * len(ids))
    return index


@settings(max_examples=200)
@given(known=st.lists(IDS, max_size=300), asked=st.lists(IDS, max_size=300))
def test_every_known_id_is_a_candidate_and_new_ids_are_not(
    known: list[str], asked: list[str]
) -> None:
    candidates = index_of(known, day=7).candidates(asked)
    # 64-bit hashes of a few hundred ids: a collision would be a one in 10^13 event.
    expected = {position for position, event_id in enumerate(asked) if event_id in known}
    assert set(candidates) == expected
    assert all(days == {7} for days in candidates.values())


def test_added_ids_are_found_with_their_days_before_and_after_the_tail_is_merged() -> None:
    index = index_of([f"old-{number}" for number in range(10_000)], day=100)
    assert len(index) == 10_000
    batches = [[f"new-{batch}-{number}" for number in range(1_000)] for batch in range(12)]
    for day, batch in enumerate(batches):
        assert index.candidates(batch) == {}
        index.add(batch, [day] * len(batch))
        assert index.candidates(batch) == {position: {day} for position in range(len(batch))}
    # The tail was merged at least once (12,000 new ids > 1/8 of the main array).
    assert len(index) == 22_000
    old = [f"old-{number}" for number in range(0, 10_000, 7)]
    everything = old + batches[0] + batches[-1]
    found = index.candidates(everything)
    assert sorted(found) == list(range(len(everything)))
    assert found[0] == {100}
    assert found[len(old)] == {0}
    assert found[len(everything) - 1] == {11}
    assert index.candidates(["never-seen", "", "old-10000"]) == {}


def test_an_id_stored_on_two_days_names_both() -> None:
    index = index_of(["a", "b"], day=3)
    index.add(["a"], [9])
    assert index.candidates(["b", "a", "c"]) == {0: {3}, 1: {3, 9}}


def test_an_empty_index_knows_nothing_and_adding_nothing_changes_nothing() -> None:
    index = IdIndex()
    assert index.candidates(["a", "b"]) == {}
    index.add([], [])
    assert len(index) == 0
    assert index.candidates([]) == {}


def test_the_index_holds_twelve_bytes_an_id() -> None:
    index = index_of([f"event-{number}" for number in range(100_000)])
    assert index.nbytes == 12 * 100_000


def test_within_a_batch_the_first_occurrence_wins() -> None:
    assert first_occurrences(["a", "b", "a", "c", "b", "é", "é"]) == [0, 1, 3, 5]
    assert first_occurrences([]) == []
