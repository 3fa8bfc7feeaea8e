"""Dead letters as operators see them: reasons, grouping, selection, replay records."""

from __future__ import annotations

from types import SimpleNamespace

import orjson
import pytest
from rich.console import Console

from services.cli.dlq import render_replay, render_summary
from services.ops.dead_letters import (
    REPLAYED_FROM,
    DeadLetter,
    DeadLetterSummary,
    OffsetRef,
    Refusal,
    ReplayRecord,
    ReplayReport,
    Selection,
    plan_replay,
)
from shared.adapters.dead_letters import (
    MAX_DEAD_LETTER_VALUE,
    dead_letter_headers,
    headers_for_record,
)

DLQ = "usage.events.dlq"


def letter(
    offset: int,
    reason: str = "invalid_json",
    *,
    partition: int = 0,
    key: bytes | None = b"ws-acme",
    value: bytes | None = b'{"event_id": "e1"',
    size: int | None = None,
    extra: tuple[tuple[str, bytes], ...] = (),
) -> DeadLetter:
    headers = dead_letter_headers(
        reason=reason,
        error=f"{reason}: something is wrong",
        topic="usage.events",
        partition=3,
        offset=100 + offset,
        original_size=size if size is not None else len(value or b""),
    )
    return DeadLetter(DLQ, partition, offset, key, value, (*headers, *extra), 1_700_000_000_000)


def test_from_record_reads_an_aiokafka_record() -> None:
    record = SimpleNamespace(
        topic=DLQ, partition=0, offset=7, key=b"k", value=b"v", timestamp=5,
        headers=[("error.reason", b"too_old"), ("empty", None)],
    )  # fmt: skip
    parsed = DeadLetter.from_record(record)
    assert (parsed.offset, parsed.reason, parsed.header("empty")) == (7, "too_old", "")
    assert parsed.position == f"{DLQ}:0:7"


def test_a_records_headers_say_where_it_came_from_and_its_full_size() -> None:
    big = SimpleNamespace(
        topic="usage.events", partition=3, offset=9, value=b"x" * (MAX_DEAD_LETTER_VALUE + 1)
    )
    empty = SimpleNamespace(topic="usage.export-requests", partition=1, offset=2, value=None)
    assert headers_for_record(big, reason="too_large", error="too_large: big") == (
        dead_letter_headers(
            reason="too_large", error="too_large: big", topic="usage.events", partition=3,
            offset=9, original_size=MAX_DEAD_LETTER_VALUE + 1,
        )
    )  # fmt: skip
    assert ("value.truncated", str(MAX_DEAD_LETTER_VALUE + 1).encode()) in headers_for_record(
        big, reason="too_large", error="e"
    )
    assert dict(headers_for_record(empty, reason="invalid_json", error="e"))["source.topic"] == (
        b"usage.export-requests"
    )


def test_headers_written_by_the_services_are_understood() -> None:
    item = letter(4, "too_far_in_future")
    assert item.reason == "too_far_in_future"
    assert item.error == "too_far_in_future: something is wrong"
    assert item.source_topic == "usage.events"
    assert item.source_offset == "3:104"
    assert item.truncated_size is None


def test_reason_falls_back_to_the_error_prefix_then_unknown() -> None:
    legacy = DeadLetter(DLQ, 0, 1, None, b"x", (("error", b"invalid_json: bad"),))
    prose = DeadLetter(DLQ, 0, 2, None, b"x", (("error", b"it broke: badly"),))
    assert legacy.reason == "invalid_json"
    assert prose.reason == "unknown"
    assert DeadLetter(DLQ, 0, 3, None, b"x").reason == "unknown"


def test_value_preview_is_one_short_line_and_shows_binary_escaped() -> None:
    long = DeadLetter(DLQ, 0, 1, None, b'{"a":\n  "' + b"x" * 500 + b'"}')
    assert "\n" not in long.value_preview(40)
    assert len(long.value_preview(40)) == 40
    assert long.value_preview(40).endswith("…")
    assert DeadLetter(DLQ, 0, 2, b"\xff", b"\xff\x00").value_preview() == "\\xff\\x00"
    assert DeadLetter(DLQ, 0, 2, b"\xff", b"\xff").key_text() == "\\xff"
    assert DeadLetter(DLQ, 0, 3, None, None).value_preview() == "(no value)"


def test_summary_counts_every_letter_but_keeps_only_the_first_ones() -> None:
    summary = DeadLetterSummary(topic=DLQ, limit=2)
    reasons = ["invalid_json", "too_old", "invalid_json", "invalid_event", "invalid_json"]
    for offset, reason in enumerate(reasons):
        summary.add(letter(offset, reason))
    assert summary.total == 5
    assert [(reason, stats.count) for reason, stats in summary.by_count()] == [
        ("invalid_json", 3), ("invalid_event", 1), ("too_old", 1),
    ]  # fmt: skip
    assert summary.reasons["invalid_json"].first == f"{DLQ}:0:0"
    assert summary.reasons["invalid_json"].last == f"{DLQ}:0:4"
    assert [item.offset for item in summary.letters] == [0, 1]
    document = orjson.loads(orjson.dumps(summary.to_json()))
    assert document["reasons"]["invalid_json"]["count"] == 3
    assert document["letters"][1]["reason"] == "too_old"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("12", OffsetRef(12)), ("2:12", OffsetRef(12, 2)), (" 0:0 ", OffsetRef(0, 0))],
)
def test_offset_references_parse(text: str, expected: OffsetRef) -> None:
    assert OffsetRef.parse(text) == expected


@pytest.mark.parametrize("text", ["", "x", "1:x", "-1", "1:-2", "1:2:3"])
def test_bad_offset_references_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="offset"):
        OffsetRef.parse(text)


def test_selection_is_the_union_of_reasons_and_offsets() -> None:
    chosen = Selection(reasons=frozenset({"too_old"}), offsets=frozenset({OffsetRef(5, 1)}))
    assert chosen.matches(letter(1, "too_old"))
    assert chosen.matches(letter(5, "invalid_json", partition=1))
    assert not chosen.matches(letter(5, "invalid_json", partition=0))
    assert not chosen.matches(letter(6, "invalid_json", partition=1))
    assert Selection(offsets=frozenset({OffsetRef(5)})).matches(letter(5, partition=9))
    assert Selection(everything=True).matches(letter(9, "anything"))
    assert Selection().is_empty
    assert not Selection().matches(letter(1))


def test_replay_restores_the_original_record_without_dead_letter_headers() -> None:
    original = letter(8, "too_far_in_future", extra=(("traceparent", b"00-abc"),))
    planned = plan_replay(original)
    assert isinstance(planned, ReplayRecord)
    assert planned.topic == "usage.events"
    assert (planned.key, planned.value) == (original.key, original.value)
    assert planned.headers == (("traceparent", b"00-abc"), (REPLAYED_FROM, f"{DLQ}:0:8".encode()))


def test_replaying_a_replayed_letter_keeps_one_replayed_from() -> None:
    twice = letter(9, extra=((REPLAYED_FROM, b"usage.events.dlq:0:1"),))
    planned = plan_replay(twice)
    assert isinstance(planned, ReplayRecord)
    assert [name for name, _ in planned.headers] == [REPLAYED_FROM]
    assert dict(planned.headers)[REPLAYED_FROM] == f"{DLQ}:0:9".encode()


def test_truncated_letters_are_refused_with_the_original_size() -> None:
    big = letter(3, "oversized", value=b"x" * 10, size=MAX_DEAD_LETTER_VALUE + 1)
    refusal = plan_replay(big)
    assert isinstance(refusal, Refusal)
    assert f"{MAX_DEAD_LETTER_VALUE + 1:,} bytes" in refusal.why
    assert "re-send it from its producer" in refusal.why


def test_letters_without_a_usable_source_are_refused() -> None:
    orphan = DeadLetter(DLQ, 0, 1, b"k", b"v", (("error.reason", b"x"),))
    looping = DeadLetter(DLQ, 0, 2, b"k", b"v", (("source.topic", DLQ.encode()),))
    assert isinstance(plan_replay(orphan), Refusal)
    assert "dead-letter topic itself" in plan_replay(looping).why  # type: ignore[union-attr]


def test_show_renders_reasons_and_letters() -> None:
    summary = DeadLetterSummary(topic=DLQ, limit=5)
    summary.add(letter(0, "invalid_json", value=b"[markup] not json"))
    summary.add(letter(1, "oversized", size=MAX_DEAD_LETTER_VALUE * 2))
    console = Console(record=True, width=200)
    render_summary(summary, console)
    text = " ".join(console.export_text().split())  # titles wrap to the table's width
    assert "2 dead letters by reason" in text
    assert "[markup] not json" in text  # escaped, not swallowed as rich markup
    assert f"truncated from {MAX_DEAD_LETTER_VALUE * 2:,} bytes" in text
    empty = Console(record=True)
    render_summary(DeadLetterSummary(topic=DLQ, limit=5), empty)
    assert "no dead letters" in empty.export_text()


def test_replay_summary_names_refusals_and_dry_runs() -> None:
    report = ReplayReport(topic=DLQ, dry_run=True, scanned=3)
    report.replayed["too_old"] = 2
    report.targets["usage.events"] = 2
    report.refused.append(Refusal(letter(2, "oversized"), "value truncated in the dead letter"))
    console = Console(record=True, width=200)
    render_replay(report, console)
    text = " ".join(console.export_text().split())
    assert "2 dead letters would be replayed" in text
    assert "usage.events (2)" in text
    assert "value truncated" in text
    assert "dry run: nothing sent" in text
