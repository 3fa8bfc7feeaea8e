"""The dedup index answers "seen before?" for whole batches: never a false "new"."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.columnar.id_index import IdIndex, first_occurrences

IDS = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=40)


@settings(max_examples=200)
@given(known=st.lists(IDS, max_size=300), asked=st.lists(IDS, max_size=300))
def test_every_known_id_is_a_candidate_and_new_ids_are_not(
    known: list[str], asked: list[str]
) -> None:
    index = IdIndex(known)
    candidates = set(index.candidates(asked))
    # 64-bit hashes of a few hundred ids: a collision would be a one in 10^13 event.
    assert candidates == {position for position, event_id in enumerate(asked) if event_id in known}


def test_added_ids_are_found_before_and_after_the_tail_is_merged() -> None:
    index = IdIndex(f"old-{number}" for number in range(10_000))
    assert len(index) == 10_000
    batches = [[f"new-{batch}-{number}" for number in range(1_000)] for batch in range(12)]
    for batch in batches:
        assert index.candidates(batch) == []
        index.add(batch)
        assert index.candidates(batch) == list(range(len(batch)))
    # The tail was merged at least once (12,000 new ids > 1/8 of the main array).
    assert len(index) == 22_000
    everything = [f"old-{number}" for number in range(0, 10_000, 7)] + batches[0] + batches[-1]
    assert index.candidates(everything) == list(range(len(everything)))
    assert index.candidates(["never-seen", "", "old-10000"]) == []


def test_an_empty_index_knows_nothing_and_adding_nothing_changes_nothing() -> None:
    index = IdIndex()
    assert index.candidates(["a", "b"]) == []
    index.add([])
    assert len(index) == 0
    assert index.candidates([]) == []


def test_the_index_holds_eight_bytes_an_id() -> None:
    index = IdIndex(f"event-{number}" for number in range(100_000))
    assert index.nbytes == 8 * 100_000


def test_within_a_batch_the_first_occurrence_wins() -> None:
    assert first_occurrences(["a", "b", "a", "c", "b", "é", "é"]) == [0, 1, 3, 5]
    assert first_occurrences([]) == []
