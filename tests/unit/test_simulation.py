"""The simulator: determinism, contract validity, disorder, realism, and its command."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from services.cli import simulate as simulate_command
from shared import codec
from shared.clock import fixed_clock
from shared.simulation import SimConfig, SimRecord, build_world, simulate
from tests.reference import build_log, parse_event
from tests.reference.parsing import Call, Invalid, Upsert, parse_timestamp

END = datetime(2026, 3, 1, tzinfo=UTC)
_EVENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
REASONS = {
    "bad_json",
    "not_object",
    "missing_field",
    "wrong_type",
    "out_of_range",
    "bad_id",
    "bad_timestamp",
    "too_old",
    "future",
    "unknown_type",
    "too_large",
}


@cache
def stream(seed: int = 7, events: int = 20_000, invalid_rate: float = 0.05) -> list[SimRecord]:
    config = SimConfig(
        seed=seed, orgs=4, events=events, end=END, users=120, invalid_rate=invalid_rate
    )
    return list(simulate(config))


def valid_events(records: list[SimRecord]) -> list[dict[str, Any]]:
    return [codec.loads(r.value) for r in records if r.kind == "valid"]


# ---- determinism and counts -----------------------------------------------------------
def test_the_same_config_gives_the_same_bytes() -> None:
    config = SimConfig(seed=3, events=3000, end=END, invalid_rate=0.05)
    first = [(r.key, r.value, r.kind, r.reason) for r in simulate(config)]
    again = [(r.key, r.value, r.kind, r.reason) for r in simulate(config)]
    other = [(r.key, r.value) for r in simulate(SimConfig(seed=4, events=3000, end=END))]
    assert first == again
    assert [(k, v) for k, v, _, _ in first] != other


def test_valid_events_number_and_span() -> None:
    records = stream()
    valid = [r for r in records if r.kind == "valid"]
    assert len(valid) == 20_000
    start = END - timedelta(days=364)
    instants = [parse_timestamp(codec.loads(r.value)["occurred_at"]) for r in valid]
    assert start <= min(instants)
    assert max(instants) <= END


def test_keys_are_org_ids_and_event_ids_are_unique_per_workspace() -> None:
    seen: set[tuple[str, str]] = set()
    orgs: dict[str, set[str]] = {}
    for record in stream():
        if record.kind != "valid":
            continue
        event = codec.loads(record.value)
        assert record.key == event["org_id"].encode() == record.org_id.encode()
        assert _EVENT_ID.fullmatch(event["event_id"])
        assert (record.org_id, event["event_id"]) not in seen
        seen.add((record.org_id, event["event_id"]))
        orgs.setdefault(event["event_id"], set()).add(record.org_id)
    assert sorted({org for org, _ in seen}) == ["ws-0001", "ws-0002", "ws-0003", "ws-0004"]
    # ids repeat across workspaces on purpose: dedup must key on (org_id, event_id)
    assert any(len(owners) > 1 for owners in orgs.values())


# ---- contract validity ------------------------------------------------------------------
def test_valid_records_pass_and_invalid_records_fail_the_reference_rules() -> None:
    reasons: Counter[str] = Counter()
    for record in stream():
        if record.kind == "invalid":
            assert record.reason in REASONS
            with pytest.raises(Invalid):
                parse_event(record.value, valid_at=END)
            reasons[record.reason] += 1
        else:
            assert record.reason is None
            assert parse_event(record.value, valid_at=END).org_id == record.org_id
    assert set(reasons) == REASONS
    assert reasons["too_large"] <= 3


def test_invalid_events_never_reuse_a_valid_id() -> None:
    valid_ids = {
        (r.org_id, codec.loads(r.value)["event_id"]) for r in stream() if r.kind == "valid"
    }
    invalid = [r for r in stream() if r.reason in ("wrong_type", "out_of_range")]
    assert invalid
    for record in invalid:
        assert (record.org_id, codec.loads(record.value)["event_id"]) not in valid_ids


# ---- disorder -----------------------------------------------------------------------------
def test_duplicates_repeat_earlier_records_byte_for_byte() -> None:
    earlier: set[tuple[bytes, bytes]] = set()
    duplicates = 0
    for record in stream():
        if record.kind == "duplicate":
            assert (record.key, record.value) in earlier
            duplicates += 1
        earlier.add((record.key, record.value))
    assert 0.035 * 20_000 < duplicates < 0.065 * 20_000


def _late_share(records: list[SimRecord], slack: timedelta) -> float:
    latest = END - timedelta(days=400)
    late = 0
    for event in valid_events(records):
        at = parse_timestamp(event["occurred_at"])
        late += at < latest - slack
        latest = max(latest, at)
    return late / len(valid_events(records))


def test_late_events_arrive_after_much_later_ones() -> None:
    assert 0.01 < _late_share(stream(), timedelta(hours=1)) < 0.03
    in_order = list(simulate(SimConfig(seed=7, events=5000, end=END, late_rate=0.0)))
    # without lateness only whole-second timestamps step back, by under a second
    assert _late_share(in_order, timedelta(seconds=1)) == 0


def test_the_reference_sees_every_valid_event_once() -> None:
    log = build_log((r.value for r in stream()), valid_at=END)
    kinds = Counter(r.kind for r in stream())
    assert (log.invalid, log.duplicates) == (kinds["invalid"], kinds["duplicate"])


# ---- realism ------------------------------------------------------------------------------
def test_workspace_settings_cover_byok_privacy_and_change() -> None:
    log = build_log((r.value for r in stream()), valid_at=END)
    assert log.org("ws-0001").workspace_settings() == (True, True)
    assert log.org("ws-0002").workspace_settings() == (False, True)
    assert log.org("ws-0002").settings == []
    assert log.org("ws-0003").workspace_settings() == (False, False)
    switch = END - timedelta(days=364) + timedelta(days=364 / 3)
    byok_calls = [c for c in log.org("ws-0001").messages if c.byok]
    assert byok_calls
    assert min(c.at for c in byok_calls) >= switch - timedelta(seconds=1)
    assert not any(c.byok for c in log.org("ws-0002").messages)
    assert any(c.deployment for c in byok_calls)


def test_activity_is_heavy_tailed_over_users() -> None:
    log = build_log((r.value for r in stream()), valid_at=END)
    per_user = Counter(m.owner for m in log.org("ws-0001").messages)
    top = sum(count for _, count in per_user.most_common(len(per_user) // 10))
    assert top > 0.4 * sum(per_user.values())


def test_entities_have_life_cycles() -> None:
    log = build_log((r.value for r in stream()), valid_at=END)
    org = log.org("ws-0001")
    upserted = set(org.history("user_upserted"))
    active = {m.owner for m in org.messages}
    assert active - upserted, "activity by users that were never upserted"
    assert upserted - active, "users that never had any activity"
    histories = org.history("user_upserted").values()
    assert any(len(h) > 1 and not h[-1][2].deleted for h in histories), "later changes"
    assert any(h[-1][2].deleted for h in histories), "deletions"
    assert org.history("agent_upserted")
    assert org.history("project_upserted")
    assert org.history("api_key_upserted")
    assert org.payg
    assert org.api_requests


def test_texts_exercise_csv_quoting_and_the_formula_guard() -> None:
    log = build_log((r.value for r in stream()), valid_at=END)
    texts = [
        value
        for org in log.orgs.values()
        for kind in org.upserts.values()
        for history in kind.values()
        for _, _, upsert in history
        for value in upsert.attrs.values()
        if isinstance(value, str)
    ]
    for needle in (",", '"', "\n", "ë", "李"):
        assert any(needle in text for text in texts), needle
    for start in ("=", "+", "-", "@"):
        assert any(text.startswith(start) for text in texts), start


def test_fields_vary_like_real_producers() -> None:
    events = valid_events(stream())
    messages = [e for e in events if e["type"] == "message"]
    sources = Counter(e.get("source") for e in messages)
    assert {"WEB", "MOBILE", "SLACK", "TEAMS", "web", None} <= set(sources)
    offsets = Counter(e["occurred_at"][-6:] if e["occurred_at"][-1] != "Z" else "Z" for e in events)
    assert offsets["Z"] > 0.7 * len(events)
    assert {"+05:30", "-03:30", "+05:45"} <= set(offsets)
    actions = {a for e in messages for a in e.get("actions", [])}
    assert {
        "canvas",
        "web_search",
        "data_analysis",
        "code_interpreter",
        "Slack_send_message",
        "Hubspot_create_contact",
    } <= actions
    usage = [e["usage"] for e in messages]
    assert any(u.get("cached_prompt_tokens") for u in usage)
    assert any(u.get("cache_creation_tokens") for u in usage)
    assert any("requests" not in e for e in messages)
    assert any(e["assistant_id"] and e["project_id"] for e in messages)


def _fraction_of_nano(amount: float) -> Decimal:
    """What is left of an amount, as a JSON encoder writes it, below the nano-dollar."""
    return (Decimal(repr(amount)) * 10**9) % 1


def test_money_goes_past_the_nano_dollar_with_ties_both_ways() -> None:
    # The money rule (each amount to whole nano-dollars, half to even) is exercised by
    # every stream: a share of costs and of payg amounts have more than 9 decimals,
    # exact half-nano ties among them, above odd (rounding up) and even (down) nanos.
    events = valid_events(stream())
    costs = [e["usage"]["cost_usd"] for e in events if e["type"] in ("message", "api_request")]
    amounts = [e["amount"] for e in events if e["type"] == "payg_consumption"]
    for figures, least in ((costs, 0.4), (amounts, 0.05)):
        past_nano = [a for a in figures if _fraction_of_nano(a) != 0]
        ties = [a for a in figures if _fraction_of_nano(a) == Decimal("0.5")]
        assert len(past_nano) > least * len(figures), (len(past_nano), len(figures))
        assert {int(Decimal(repr(a)) * 10**9) % 2 for a in ties} == {0, 1}
    limits = {e.get("payg_limit") for e in events if e["type"] == "user_upserted"} - {None}
    assert {250.5000000005, 19.9899999995} <= limits


def test_the_end_defaults_to_the_clock() -> None:
    config = SimConfig(days=2).resolved(clock=fixed_clock(END))
    assert (config.start, config.end) == (END - timedelta(days=2), END)
    assert SimConfig(end=END, days=1).resolved(clock=fixed_clock(END + timedelta(1))).end == END


def test_big_workspaces_are_built_lazily() -> None:
    config = SimConfig(
        seed=1,
        orgs=1,
        events=5_000_000,
        end=END,
        users=10_000,
        agents=1_000,
        projects=300,
        api_keys=100,
        models=20,
    )
    world = build_world(config.resolved())
    assert [len(world[0].users), len(world[0].agents), len(world[0].models)] == [10_000, 1_000, 20]
    assert len(set(world[0].users.ids)) == 10_000
    first = list(itertools.islice(simulate(config), 20_000))
    assert len(first) == 20_000
    calls = [parse_event(r.value, valid_at=END) for r in first if r.kind == "valid"]
    assert any(isinstance(c, Call) for c in calls)
    assert sum(isinstance(c, Upsert) for c in calls) > 1_000  # the initial upserts come first


@pytest.mark.parametrize(
    "change",
    [
        {"dup_rate": 1.5},
        {"invalid_rate": -0.1},
        {"orgs": 0},
        {"days": 0},
        {"end": datetime(2026, 3, 1)},
        {"start": END, "end": END},
    ],
)
def test_bad_configs_are_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"must|before"):
        SimConfig(**change).resolved()


# ---- the command --------------------------------------------------------------------------
def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    simulate_command.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["simulate", *argv])


def test_command_writes_ndjson_of_the_stream(tmp_path: Path) -> None:
    out = tmp_path / "events.ndjson"
    args = _parse(
        "--events",
        "800",
        "--seed",
        "2",
        "--end",
        "2026-03-01T00:00:00Z",
        "--invalid-rate",
        "0.05",
        "--out",
        str(out),
    )
    assert args.func(args) == 0
    lines = [codec.loads(line) for line in out.read_bytes().splitlines()]
    expected = list(simulate(simulate_command.config_from_args(args)))
    assert len(lines) == len(expected)
    for line, record in zip(lines, expected, strict=True):
        value = line["value"].encode() if "value" in line else None
        assert line["key"].encode() == record.key
        assert (line["kind"], line["reason"]) == (record.kind, record.reason)
        assert value is None or value == record.value


def test_command_dry_run_prints_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse("--events", "500", "--orgs", "2", "--dry-run", "--end", "2026-03-01T00:00Z")
    assert args.func(args) == 0
    err = capsys.readouterr().err
    assert "message" in err
    assert "workspace_settings" in err
    assert "seed 0, 2 workspaces, --days 364.0 --end 2026-03-01T00:00:00+00:00" in err


def test_command_needs_an_aware_end() -> None:
    with pytest.raises(SystemExit):
        _parse("--end", "2026-03-01T00:00:00")


class FakeProducer:
    """Acknowledges every send, except values it was told to refuse."""

    def __init__(self, refuse: set[bytes]) -> None:
        self.refuse = refuse
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if value in self.refuse:
            future.set_exception(RuntimeError("MessageSizeTooLarge"))
        else:
            future.set_result(None)
        self.sent.append((topic, key, value))
        return future


async def test_produce_sends_every_record_and_tolerates_oversized_ones() -> None:
    records = [r for r in stream() if r.kind != "invalid" or r.reason == "too_large"][:3000]
    records += [r for r in stream() if r.reason == "too_large"]
    producer = FakeProducer({r.value for r in records if r.reason == "too_large"})
    summary = simulate_command.Summary()
    await simulate_command.produce(records, lambda: producer, "t", 100, summary)
    assert producer.started
    assert producer.stopped
    assert [(k, v) for _, k, v in producer.sent] == [(r.key, r.value) for r in records]
    assert summary.rejected_too_large == sum(r.reason == "too_large" for r in records) > 0


async def test_produce_fails_when_a_valid_record_is_refused() -> None:
    records = [r for r in stream() if r.kind == "valid"][:50]
    producer = FakeProducer({records[7].value})
    with pytest.raises(RuntimeError, match="MessageSizeTooLarge"):
        await simulate_command.produce(
            records, lambda: producer, "t", 10, simulate_command.Summary()
        )
    assert producer.stopped
