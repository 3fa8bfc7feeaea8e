"""The delivery service without a network: pending deliveries in an in-memory store,
the dispatcher's claim, signature, retry schedule and dead letters, and the secrets'
rotation overlap. The sender is a fake; the real POST is tested in
tests/integration/test_webhooks.py."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from typing import Any

from services.delivery.dispatcher import Dispatcher
from services.delivery.pending import (
    DEAD_PREFIX,
    DELIVERED_PREFIX,
    PENDING_PREFIX,
    PendingStore,
    new_delivery,
)
from services.delivery.sender import SendResult
from shared import codec
from shared.adapters.callback_vetting import CallbackVetter, VettedCallback
from shared.adapters.webhook_secrets import WebhookSecrets
from shared.domain.webhooks.addresses import IPAddress
from shared.domain.webhooks.signature import verify
from shared.settings import Settings
from tests.unit.memory_store import MemoryStore

START = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
BODY = b'{"request_id":"r-1","org_id":"ws-1","success":true}'
SETTINGS = Settings(webhook_retry_base_s=10.0, webhook_retry_max_s=100.0, webhook_max_age_s=300.0)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


class FakeSender:
    def __init__(self, *results: SendResult) -> None:
        self.results = list(results)
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, callback: VettedCallback, body: bytes, **kwargs: Any) -> SendResult:
        self.calls.append({"address": str(callback.address), "body": body, **kwargs})
        return self.results.pop(0) if self.results else SendResult(204, None)


def vetter(address: str = "93.184.216.34") -> CallbackVetter:
    async def resolve(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address(address)]

    return CallbackVetter(allow_private=False, allow_http=False, dns_timeout_s=1, resolve=resolve)


async def setup(
    sender: FakeSender, *, address: str = "93.184.216.34", secret: bool = True
) -> tuple[Dispatcher, MemoryStore, Clock, str]:
    exports, aggregates, clock = MemoryStore(), MemoryStore(), Clock()
    secrets = WebhookSecrets(aggregates, overlap_s=3600)
    made = await secrets.rotate("ws-1", START) if secret else ""
    pending = PendingStore(exports)
    assert await pending.add(new_delivery("ws-1", "r-1", "https://hooks.example/x", BODY, START))
    dispatcher = Dispatcher(
        SETTINGS,
        pending=pending,
        secrets=secrets,
        vetter=vetter(address),
        clock=clock,
        uniform=lambda: 0.5,
        sender=sender,
    )
    return dispatcher, exports, clock, made


async def run_due(dispatcher: Dispatcher) -> None:
    await dispatcher.dispatch_due()
    await dispatcher.settle(timeout_s=10)


def only(store: MemoryStore, prefix: str) -> dict[str, Any]:
    keys = [key for key in store.objects if key.startswith(prefix)]
    assert len(keys) == 1, keys
    body = store.body(keys[0])
    assert body is not None
    found: dict[str, Any] = codec.loads(body)
    return found


async def test_a_2xx_delivers_the_exact_body_signed_with_the_workspace_secret() -> None:
    sender = FakeSender()
    dispatcher, exports, _, secret = await setup(sender)
    await run_due(dispatcher)
    [call] = sender.calls
    assert call["body"] == BODY
    assert call["request_id"] == "r-1"
    assert call["address"] == "93.184.216.34"
    assert verify(call["signature"], BODY, secret, now=int(START.timestamp()))
    assert only(exports, DELIVERED_PREFIX)["attempts"] == 1
    assert not [key for key in exports.objects if key.startswith(PENDING_PREFIX)]


async def test_failures_are_rescheduled_with_backoff_then_dead_lettered() -> None:
    sender = FakeSender(*(SendResult(500, "answered HTTP 500") for _ in range(10)))
    dispatcher, exports, clock, _ = await setup(sender)
    await run_due(dispatcher)
    first = only(exports, PENDING_PREFIX)
    assert first["attempts"] == 1
    assert first["last_error"] == "answered HTTP 500"
    # uniform 0.5 of the first ceiling (10 s): 5 s later
    assert first["next_attempt_ms"] == int((START + timedelta(seconds=5)).timestamp() * 1000)
    await run_due(dispatcher)  # not due yet: nothing sent
    assert len(sender.calls) == 1
    waits = []
    while not [key for key in exports.objects if key.startswith(DEAD_PREFIX)]:
        record = only(exports, PENDING_PREFIX)
        due = datetime.fromtimestamp(record["next_attempt_ms"] / 1000, UTC)
        waits.append((due - clock.now).total_seconds())
        clock.now = due
        await run_due(dispatcher)
    assert waits[:4] == [5.0, 10.0, 20.0, 40.0]  # half of each doubling ceiling
    assert all(wait <= 50.0 for wait in waits)  # half of the 100 s cap
    dead = only(exports, DEAD_PREFIX)
    assert dead["last_error"] == "answered HTTP 500"
    assert dead["attempts"] == len(sender.calls)
    assert clock.now - START <= timedelta(seconds=300)
    assert not [key for key in exports.objects if key.startswith(PENDING_PREFIX)]


async def test_no_secret_dead_letters_at_once_and_sends_nothing() -> None:
    sender = FakeSender()
    dispatcher, exports, _, _ = await setup(sender, secret=False)
    await run_due(dispatcher)
    assert sender.calls == []
    assert "has no webhook secret" in only(exports, DEAD_PREFIX)["last_error"]


async def test_a_host_now_resolving_to_a_private_address_is_not_called() -> None:
    sender = FakeSender()
    dispatcher, exports, _, _ = await setup(sender, address="10.1.2.3")
    await run_due(dispatcher)
    assert sender.calls == []
    pending = only(exports, PENDING_PREFIX)
    assert pending["last_error"].startswith("refused: callback_url host hooks.example")
    assert "private address" in pending["last_error"]


async def test_two_replicas_claim_one_delivery_once() -> None:
    sender = FakeSender()
    dispatcher, exports, clock, _ = await setup(sender)
    aggregates = MemoryStore()
    secrets = WebhookSecrets(aggregates, overlap_s=0)
    await secrets.rotate("ws-1", START)
    other = Dispatcher(
        SETTINGS,
        pending=PendingStore(exports),
        secrets=secrets,
        vetter=vetter(),
        clock=clock,
        sender=sender,
    )
    assert await dispatcher.dispatch_due() == 1
    assert await other.dispatch_due() == 1  # both saw it due: only one claim may win
    await dispatcher.settle(timeout_s=10)
    await other.settle(timeout_s=10)
    assert len(sender.calls) == 1


async def test_a_claimed_delivery_whose_replica_died_is_tried_after_its_lease() -> None:
    sender = FakeSender()
    dispatcher, exports, clock, _ = await setup(sender)
    pending = PendingStore(exports)
    [due] = await pending.due(clock(), limit=10)
    assert await pending.claim(due, clock(), lease_s=60) is not None  # then "SIGKILL"
    await run_due(dispatcher)
    assert sender.calls == []
    clock.now += timedelta(seconds=61)
    await run_due(dispatcher)
    assert len(sender.calls) == 1
    assert only(exports, DELIVERED_PREFIX)["attempts"] == 2


async def test_a_completion_taken_twice_is_one_delivery_and_none_after_delivery() -> None:
    store = MemoryStore()
    pending = PendingStore(store)
    delivery = new_delivery("ws-1", "r-1", "https://hooks.example/x", BODY, START)
    assert await pending.add(delivery)
    assert not await pending.add(delivery)
    other = new_delivery("ws-1", "r-1", "https://hooks.example/x", BODY + b" ", START)
    assert await pending.add(other)  # another completion of the request: its own delivery
    [first, _] = await pending.due(START, limit=10)
    claimed = await pending.claim(first, START, 60)
    assert claimed is not None
    await pending.delivered(claimed, START)
    assert not await pending.add(new_delivery("ws-1", "r-1", "https://h/x", claimed.body, START))


async def test_rotation_signs_with_both_secrets_for_the_overlap_only() -> None:
    secrets = WebhookSecrets(MemoryStore(), overlap_s=3600)
    assert await secrets.signing("ws-1", START) == []
    first = await secrets.rotate("ws-1", START)
    assert await secrets.signing("ws-1", START) == [first]
    second = await secrets.rotate("ws-1", START + timedelta(minutes=1))
    assert second != first
    assert await secrets.signing("ws-1", START + timedelta(minutes=2)) == [second, first]
    later = START + timedelta(minutes=1, seconds=3600)
    assert await secrets.signing("ws-1", later) == [second]
    third = await secrets.rotate("ws-1", later)
    assert await secrets.signing("ws-1", later) == [third, second]


async def test_a_malformed_pending_object_is_left_alone_and_the_others_delivered() -> None:
    sender = FakeSender()
    dispatcher, exports, _, _ = await setup(sender)
    exports.objects[PENDING_PREFIX + "ws-1/r-0.0000000000000000.json"] = (b"not json", '"x1"', {})
    exports.objects[PENDING_PREFIX + "ws-1/r-2.0000000000000000.json"] = (b"{}", '"x2"', {})
    exports.objects[PENDING_PREFIX + "ws-1/r-3.0000000000000000.json"] = (b"[1]", '"x3"', {})
    await run_due(dispatcher)  # raised out of dispatch_due before: the service stopped
    assert [call["body"] for call in sender.calls] == [BODY]
    assert len([key for key in exports.objects if key.startswith(PENDING_PREFIX)]) == 3
    reads = len(exports.gets)
    await run_due(dispatcher)
    assert len(exports.gets) == reads  # unchanged malformed objects are not read again


async def test_a_backlog_costs_reads_of_the_tries_started_not_of_every_due_object() -> None:
    store = MemoryStore()
    pending = PendingStore(store)
    for n in range(50):
        body = BODY + b" " * n
        made = START + timedelta(seconds=n)
        assert await pending.add(new_delivery("ws-1", f"r-{n}", "https://h/x", body, made))
    now = START + timedelta(minutes=1)
    first = await pending.due(now, limit=4)
    assert [d.request_id for d in first] == ["r-0", "r-1", "r-2", "r-3"]  # oldest due first
    store.gets.clear()
    again = await pending.due(now, limit=4, skip={d.key for d in first})
    assert [d.request_id for d in again] == ["r-4", "r-5", "r-6", "r-7"]
    assert len(store.gets) == 4  # was 50 a poll: every due object read again each time


async def test_a_dispatcher_with_a_backlog_reads_only_what_it_starts() -> None:
    sender = FakeSender()
    dispatcher, exports, _, _ = await setup(sender)
    pending = PendingStore(exports)
    for n in range(2, 60):
        body = BODY + b" " * n
        assert await pending.add(new_delivery("ws-1", f"r-{n}", "https://h/x", body, START))
    assert await dispatcher.dispatch_due() == SETTINGS.webhook_concurrency
    await dispatcher.settle(timeout_s=10)
    left = len([key for key in exports.objects if key.startswith(PENDING_PREFIX)])
    assert left == 59 - SETTINGS.webhook_concurrency
    exports.gets.clear()
    assert await dispatcher.dispatch_due() == SETTINGS.webhook_concurrency
    await dispatcher.settle(timeout_s=10)
    pending_reads = [key for key in exports.gets if key.startswith(PENDING_PREFIX)]
    assert len(pending_reads) == SETTINGS.webhook_concurrency  # not the whole backlog


class BrokenSecrets(WebhookSecrets):
    """A secrets record that cannot be read (malformed, or a failure the try does not
    expect): every try ends before its POST."""

    async def signing(self, org_id: str, now: datetime) -> list[str]:
        raise KeyError("secrets")


async def test_a_delivery_whose_tries_keep_failing_before_the_post_is_dead_lettered_in_time() -> (
    None
):
    exports, clock, sender = MemoryStore(), Clock(), FakeSender()
    pending = PendingStore(exports)
    assert await pending.add(new_delivery("ws-1", "r-1", "https://hooks.example/x", BODY, START))
    dispatcher = Dispatcher(
        SETTINGS,
        pending=pending,
        secrets=BrokenSecrets(MemoryStore(), overlap_s=0),
        vetter=vetter(),
        clock=clock,
        sender=sender,
    )
    for _ in range(40):  # a try every lease: tried forever before, never dead-lettered
        await run_due(dispatcher)
        clock.now += timedelta(seconds=60)
    assert clock.now - START > timedelta(seconds=SETTINGS.webhook_max_age_s)
    assert sender.calls == []
    assert not [key for key in exports.objects if key.startswith(PENDING_PREFIX)]
    dead = only(exports, DEAD_PREFIX)
    assert "out of time" in dead["last_error"]


async def test_rotating_again_within_the_overlap_keeps_two_secrets_signing() -> None:
    # Contract §4a: the previous secret signs as a second v1=. Every earlier one kept
    # signing too: a third v1=, and a header growing with each rotation of the overlap
    # (100 rotations: 6.5 KiB of header, past many servers' limits).
    secrets = WebhookSecrets(MemoryStore(), overlap_s=3600)
    made = [await secrets.rotate("ws-1", START + timedelta(minutes=n)) for n in range(5)]
    signing = await secrets.signing("ws-1", START + timedelta(minutes=5))
    assert signing == [made[4], made[3]]


async def test_after_a_restart_a_backlog_is_learnt_a_slice_a_poll_and_tries_start_at_once() -> None:
    # Every unknown object was read before the first try: 100k pending objects after a
    # restart meant 100k sequential GETs (minutes) before anything was sent.
    store = MemoryStore()
    for n in range(20):
        body = BODY + b" " * n
        made = START + timedelta(seconds=n)
        assert await PendingStore(store).add(
            new_delivery("ws-1", f"r-{n}", "https://h/x", body, made)
        )
    pending = PendingStore(store, reads_per_poll=5)
    now = START + timedelta(minutes=1)
    store.gets.clear()
    first = await pending.due(now, limit=2)
    assert len(first) == 2
    assert len(store.gets) <= 5 + 2
    seen = {d.key for d in first}
    for _ in range(10):
        seen |= {d.key for d in await pending.due(now, limit=2, skip=seen)}
    assert len(seen) == 20  # the later slices are learnt and tried too


async def test_a_retry_is_signed_with_the_secrets_signing_when_it_is_made() -> None:
    exports, aggregates, clock = MemoryStore(), MemoryStore(), Clock()
    secrets = WebhookSecrets(aggregates, overlap_s=60)
    old = await secrets.rotate("ws-1", START)
    pending = PendingStore(exports)
    assert await pending.add(new_delivery("ws-1", "r-1", "https://hooks.example/x", BODY, START))
    sender = FakeSender(SendResult(500, "answered HTTP 500"), SendResult(500, "answered HTTP 500"))
    settings = Settings(webhook_retry_base_s=200.0, webhook_retry_max_s=200.0)
    dispatcher = Dispatcher(
        settings,
        pending=pending,
        secrets=secrets,
        vetter=vetter(),
        clock=clock,
        uniform=lambda: 0.5,
        sender=sender,
    )
    await run_due(dispatcher)  # fails; next try 100 s later
    clock.now += timedelta(seconds=10)
    new = await secrets.rotate("ws-1", clock.now)
    clock.now += timedelta(seconds=90)  # the overlap (60 s) has ended
    await run_due(dispatcher)
    clock.now += timedelta(seconds=200)
    await run_due(dispatcher)
    first, second, third = (call["signature"] for call in sender.calls)
    assert first.count("v1=") == 1
    assert verify(first, BODY, old, now=int(START.timestamp()))
    at = int((START + timedelta(seconds=100)).timestamp())
    assert second.startswith(f"t={at},")
    assert second.count("v1=") == 1
    assert verify(second, BODY, new, now=at)
    assert not verify(second, BODY, old, now=at)
    assert third != second  # a fresh t each try


async def test_a_crash_between_the_delivered_marker_and_the_delete_sends_nothing_again() -> None:
    sender = FakeSender()
    dispatcher, exports, clock, _ = await setup(sender)
    pending = PendingStore(exports)
    [due] = await pending.due(clock(), limit=1)
    claimed = await pending.claim(due, clock(), lease_s=60)
    assert claimed is not None
    marker = {"request_id": "r-1", "at_ms": 0, "attempts": 1}
    await exports.put(DELIVERED_PREFIX + claimed.name, codec.dumps(marker))  # then "SIGKILL"
    clock.now += timedelta(seconds=61)
    await run_due(dispatcher)
    assert sender.calls == []  # was POSTed a second time
    assert not [key for key in exports.objects if key.startswith(PENDING_PREFIX)]
