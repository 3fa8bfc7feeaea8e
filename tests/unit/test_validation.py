"""Every malformed record becomes a dead-letter reason; valid ones pass unchanged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from services.ingest.validation import AcceptedRange, Rejected, validate_record
from shared.contracts.events import MessageEvent
from shared.domain.facts import NANO, fact_from_message, to_nano
from tests.reference.parsing import Invalid, parse_timestamp

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
RANGE = AcceptedRange.at(NOW)


def message(**changes: object) -> bytes:
    event: dict[str, object] = {
        "event_id": "evt-1",
        "type": "message",
        "org_id": "ws-acme",
        "occurred_at": "2026-11-01T10:00:00+05:30",
        "user_id": "u-1",
        "model": "gpt-4.1",
        "provider": "openai",
        "source": "slack",
        "actions": ["canvas", "canvas"],
        "usage": {
            "prompt_tokens": 100,
            "completion_tokens": 5,
            "cached_prompt_tokens": 40,
            "cost_usd": 0.000123,
        },
        "extra_field_from_the_future": {"ignored": True},
    }
    event.update(changes)
    return orjson.dumps(event)


def test_valid_message_becomes_a_normalised_fact() -> None:
    event = validate_record(message(), RANGE, max_bytes=1 << 20)
    assert isinstance(event, MessageEvent)
    fact = fact_from_message(event)
    assert fact[11] == "SLACK"  # source upper-cased
    assert fact[12] == ["canvas"]  # an action counts once per message
    assert fact[-1] == 123 * NANO // 1_000_000
    assert fact[2] == int(datetime(2026, 11, 1, 4, 30, tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{not json", "invalid_json"),
        (b"\xff\xfe\x00", "invalid_json"),
        (b"[1, 2]", "invalid_event"),
        (message(type="teleport"), "unknown_type"),
        (message(org_id="ws/../other"), "invalid_event"),
        (message(org_id="ws-\u0430cme"), "invalid_event"),  # a Cyrillic look-alike letter
        (message(user_id=None), "invalid_event"),
        (message(event_id="has space"), "invalid_event"),
        (message(occurred_at="2026-11-01T10:00:00"), "invalid_event"),  # no offset
        (message(occurred_at=1700000000), "invalid_event"),
        (message(usage={"prompt_tokens": "12"}), "invalid_event"),
        (message(usage={"prompt_tokens": 10, "cached_prompt_tokens": 11}), "invalid_event"),
        (message(requests=0), "invalid_event"),
        (message(requests=10**6 + 1), "invalid_event"),
        (message(usage={"prompt_tokens": 10**9 + 1}), "invalid_event"),
        (message(usage={"cost_usd": 1e6 + 1}), "invalid_event"),
        (message(byok="yes"), "invalid_event"),
        (message(occurred_at="2025-10-01T00:00:00Z"), "too_old"),
        (message(occurred_at=(NOW + timedelta(hours=25)).isoformat()), "too_far_in_future"),
    ],
)
def test_bad_records_are_rejected_with_a_reason(value: bytes, reason: str) -> None:
    result = validate_record(value, RANGE, max_bytes=1 << 20)
    assert isinstance(result, Rejected), result
    assert result.reason == reason
    assert result.detail


def test_oversized_values_are_rejected_without_parsing() -> None:
    value = b"{" + b" " * (1 << 20) + b"}"
    result = validate_record(value, RANGE, max_bytes=1 << 20)
    assert isinstance(result, Rejected)
    assert result.reason == "oversized"


def test_events_just_inside_the_range_are_accepted() -> None:
    assert not isinstance(
        validate_record(
            message(occurred_at=(NOW + timedelta(hours=23)).isoformat()), RANGE, max_bytes=1 << 20
        ),
        Rejected,
    )
    assert not isinstance(
        validate_record(message(occurred_at="2025-11-21T00:00:00Z"), RANGE, max_bytes=1 << 20),
        Rejected,
    )


def test_money_is_exact_in_nano_dollars() -> None:
    assert to_nano(0.1) + to_nano(0.2) == to_nano(0.3)
    assert to_nano(1234.567890123) == 1_234_567_890_123
    assert to_nano(0.0000000015) == 2  # past 9 decimals: half-even
    assert to_nano(0.0000000025) == 2
    assert to_nano(0) == 0


def test_flush_cadence_follows_freshness_when_caught_up_and_batches_in_a_backlog() -> None:
    from services.ingest.worker import flush_due
    from shared.settings import Settings

    settings = Settings(
        ingest_flush_interval_s=2, ingest_backlog_flush_interval_s=10, ingest_max_pending_facts=1000
    )

    def due(elapsed_s: float, backlog: bool) -> bool:
        return flush_due(
            settings, elapsed_s=elapsed_s, backlog=backlog, pending_facts=10, over_bounds=False
        )

    assert not due(1.9, backlog=False)
    assert due(2.0, backlog=False)
    assert not due(9.9, backlog=True)
    assert due(10.0, backlog=True)
    assert flush_due(settings, elapsed_s=0.1, backlog=True, pending_facts=1000, over_bounds=False)
    assert flush_due(settings, elapsed_s=0.1, backlog=True, pending_facts=0, over_bounds=True)


# RFC 3339 §5.6 (contract §2): the shapes a producer might send for occurred_at.
RFC3339_SHAPES = {
    "2026-11-01T10:00:00+05:30": datetime(2026, 11, 1, 4, 30, tzinfo=UTC),
    "2026-11-01t10:00:00z": datetime(2026, 11, 1, 10, tzinfo=UTC),  # §5.6: either case
    "2026-11-01T10:00:00-00:00": datetime(2026, 11, 1, 10, tzinfo=UTC),
    "2026-11-01T10:00:00.1234567+23:59": datetime(2026, 10, 31, 10, 1, 0, 123456, tzinfo=UTC),
}
NOT_RFC3339 = [
    "2026-11-01T10:00:00+0530",  # the colon is required
    "2026-11-01T10:00:00+05",  # minutes are required
    "2026-11-01 10:00:00Z",  # a space is not "T"
    "2026-11-01T10:00Z",  # seconds are required
    "2026-11-01T10:00:00,5Z",  # a decimal comma
    "2026-11-01T10:00:00+00:60",  # offset minutes 00-59
    "2026-11-01T10:00:00+24:00",
    "1793527200",  # a Unix time in a string
    "20261101T100000Z",
]


@pytest.mark.parametrize(("text", "instant"), sorted(RFC3339_SHAPES.items()))
def test_rfc3339_timestamps_are_read_in_every_form_it_allows(text: str, instant: datetime) -> None:
    event = validate_record(message(occurred_at=text), RANGE, max_bytes=1 << 20)
    assert isinstance(event, MessageEvent)
    assert event.occurred_at == instant
    assert parse_timestamp(text) == instant  # the oracle reads it the same


@pytest.mark.parametrize("text", NOT_RFC3339)
def test_timestamps_rfc3339_forbids_are_rejected(text: str) -> None:
    rejected = validate_record(message(occurred_at=text), RANGE, max_bytes=1 << 20)
    assert isinstance(rejected, Rejected)
    assert rejected.reason == "invalid_event"
    assert "occurred_at" in rejected.detail
    assert "RFC 3339" in rejected.detail
    with pytest.raises(Invalid):
        parse_timestamp(text)
