"""The compactor's rounds (services/compactor) against an in-memory store: it finds the
workspaces whose facts table has new commits from the store alone (a listing after the
last commit seen), tidies those and only those, every workspace at its first look, a
refused one again; its shard splits the workspaces; a bad shard setting is refused."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from services.cli import MISCONFIGURED, main
from services.compactor.changes import delta_log_prefix
from services.compactor.janitor import Janitor, Sweep
from services.compactor.metrics import CompactorMetrics
from services.compactor.rounds import Compactor
from services.compactor.shard import Shard
from shared.columnar.tables import TableStore
from shared.errors import StoreUnavailable
from shared.settings import Settings, load_settings
from tests.unit.memory_store import MemoryStore

NOW = datetime(2026, 6, 15, 12, tzinfo=UTC)
ORGS = ("ws-a", "ws-b", "ws-c")


class RecordingJanitor(Janitor):
    """The janitor with its per-workspace step replaced: records what it is given, and
    answers "refused part way" for the workspaces in ``refuse``."""

    def __init__(self, store: MemoryStore) -> None:
        super().__init__(Settings(), store, TableStore.local("/nonexistent"))
        self.calls: list[tuple[str, bool]] = []
        self.refuse: set[str] = set()

    def _upkeep(self, org: str, now: datetime, *, full: bool) -> Sweep:
        self.calls.append((org, full))
        return Sweep(workspaces=1, merged_months=1, fenced=int(org in self.refuse))

    def taken(self) -> list[str]:
        orgs = [org for org, _ in self.calls]
        self.calls.clear()
        return orgs


def commit(store: MemoryStore, org: str, version: int) -> None:
    store.objects[f"{delta_log_prefix(org)}{version:020d}.json"] = (b"{}", '"1"', {})


def checkpoint(store: MemoryStore, org: str, version: int) -> None:
    prefix = delta_log_prefix(org)
    store.objects[f"{prefix}{version:020d}.checkpoint.parquet"] = (b"PAR1", '"1"', {})
    body = orjson.dumps({"version": version, "size": 1})
    store.objects[f"{prefix}_last_checkpoint"] = (body, '"1"', {})


def compactor(
    store: MemoryStore, janitor: Janitor, *, shard: Shard | None = None, **settings: Any
) -> Compactor:
    return Compactor(Settings(**settings), store, janitor, shard=shard, clock=lambda: NOW)


@pytest.fixture
def store() -> MemoryStore:
    found = MemoryStore()
    for org in ORGS:
        commit(found, org, 0)
        commit(found, org, 1)
    return found


async def test_every_workspace_is_tidied_at_the_first_look_then_only_those_with_commits(
    store: MemoryStore,
) -> None:
    janitor = RecordingJanitor(store)
    rounds = compactor(store, janitor)
    assert (await rounds.round()).workspaces == 3
    assert janitor.taken() == list(ORGS)
    await rounds.round()
    assert janitor.taken() == [], "nobody committed: nothing is opened"
    commit(store, "ws-b", 2)
    await rounds.round()
    assert janitor.taken() == ["ws-b"], "its table version moved"
    await rounds.round()
    assert janitor.taken() == []


async def test_a_new_workspace_is_tidied_and_a_deleted_one_forgotten(store: MemoryStore) -> None:
    janitor = RecordingJanitor(store)
    rounds = compactor(store, janitor)
    await rounds.round()
    janitor.taken()
    commit(store, "ws-new", 0)
    await rounds.round()
    assert janitor.taken() == ["ws-new"]
    for key in [key for key in store.objects if "/ws-a/" in key]:
        del store.objects[key]
    await rounds.round()
    assert janitor.taken() == []
    commit(store, "ws-a", 0)  # created again: a first look again
    await rounds.round()
    assert janitor.taken() == ["ws-a"]


async def test_a_refused_workspace_is_tidied_again_without_new_commits(store: MemoryStore) -> None:
    janitor = RecordingJanitor(store)
    janitor.refuse = {"ws-c"}
    rounds = compactor(store, janitor)
    assert (await rounds.round()).fenced == 1
    janitor.taken()
    await rounds.round()
    assert janitor.taken() == ["ws-c"], "refused part way: tried again"
    janitor.refuse.clear()
    await rounds.round()
    assert janitor.taken() == ["ws-c"]
    await rounds.round()
    assert janitor.taken() == []


async def test_a_failed_listing_forgets_nothing(store: MemoryStore) -> None:
    janitor = RecordingJanitor(store)
    rounds = compactor(store, janitor)
    await rounds.round()
    janitor.taken()
    commit(store, "ws-a", 2)
    store.fail = StoreUnavailable
    with pytest.raises(StoreUnavailable):
        await rounds.round()
    store.fail = None
    await rounds.round()
    assert janitor.taken() == ["ws-a"]


async def test_the_first_look_lists_from_the_last_checkpoint_then_after_the_last_commit() -> None:
    store = MemoryStore()
    for version in range(25):
        commit(store, "ws-a", version)
    checkpoint(store, "ws-a", 20)
    listed: list[str | None] = []
    real = store.list_objects

    async def recording(prefix: str, *, start_after: str | None = None) -> Any:
        listed.append(start_after)
        return await real(prefix, start_after=start_after)

    store.list_objects = recording  # type: ignore[method-assign]
    janitor = RecordingJanitor(store)
    rounds = compactor(store, janitor)
    await rounds.round()
    prefix = delta_log_prefix("ws-a")
    assert listed == [f"{prefix}00000000000000000020"]
    commit(store, "ws-a", 25)
    await rounds.round()
    assert listed[-1] == f"{prefix}00000000000000000024.json"
    assert janitor.taken() == ["ws-a", "ws-a"]


async def test_the_full_pass_takes_every_workspace_and_the_next_round_looks_past_it(
    store: MemoryStore,
) -> None:
    janitor = RecordingJanitor(store)
    rounds = compactor(store, janitor)
    await rounds.full_pass()
    assert janitor.calls == [(org, True) for org in ORGS]
    janitor.taken()
    await rounds.round()
    assert janitor.taken() == [], "what the full pass covered is not tidied again"


async def test_metrics_count_the_passes_and_what_they_did(store: MemoryStore) -> None:
    registry = CollectorRegistry()
    janitor = RecordingJanitor(store)
    janitor.refuse = {"ws-a"}
    rounds = Compactor(
        Settings(), store, janitor, metrics=CompactorMetrics(registry), clock=lambda: NOW
    )
    await rounds.round()
    await rounds.full_pass()

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("usage_compactor_passes_total", kind="round") == 1
    assert value("usage_compactor_passes_total", kind="full") == 1
    assert value("usage_compactor_workspaces_changed_total") == 3
    assert value("usage_compactor_workspaces_tidied_total") == 6
    assert value("usage_compactor_months_merged_total") == 6
    assert value("usage_compactor_fenced_total") == 2
    assert (value("usage_compactor_last_pass_seconds", kind="full") or 0) >= 0


async def test_run_makes_the_full_pass_first_then_rounds_until_stopped(store: MemoryStore) -> None:
    stopping = asyncio.Event()
    janitor = RecordingJanitor(store)
    rounds = compactor(store, janitor, compaction_interval_s=0.001)
    real_round = rounds.round

    async def round_then_stop(stop: asyncio.Event | None = None) -> Sweep:
        commit(store, "ws-a", 9)
        done = await real_round(stop)
        stopping.set()
        return done

    rounds.round = round_then_stop  # type: ignore[method-assign]
    await asyncio.wait_for(rounds.run(stopping), 10)
    assert janitor.calls == [*((org, True) for org in ORGS), ("ws-a", False)]


async def test_a_pass_stops_at_a_workspace_boundary_and_keeps_the_rest(store: MemoryStore) -> None:
    stop = asyncio.Event()
    janitor = RecordingJanitor(store)
    upkeep = janitor._upkeep

    def first_then_stop(org: str, now: datetime, *, full: bool) -> Sweep:
        stop.set()
        return upkeep(org, now, full=full)

    janitor._upkeep = first_then_stop  # type: ignore[method-assign]
    assert (await janitor.tidy(ORGS, NOW, stop=stop)).workspaces == 1
    assert janitor.taken() == ["ws-a"]
    assert (await janitor.tidy([], NOW)).workspaces == 2, "the others wait for the next"


# ---- shards ------------------------------------------------------------------------------------
def test_shards_split_the_workspaces_between_replicas_once_each() -> None:
    orgs = [f"ws-{n:04d}" for n in range(300)]
    shards = [Shard(index, 3) for index in range(3)]
    parts = [shard.select(orgs) for shard in shards]
    assert sorted(org for part in parts for org in part) == orgs
    assert all(60 < len(part) < 140 for part in parts), [len(part) for part in parts]
    assert Shard().select(orgs) == orgs
    # Stable across processes (CRC-32, not the salted hash()): crc32(b"ws-0001") = 1520209657.
    assert [shard.owns("ws-0001") for shard in shards] == [False, True, False]


async def test_a_replica_tidies_only_its_shard(store: MemoryStore) -> None:
    tidied: set[str] = set()
    for index in range(2):
        janitor = RecordingJanitor(store)
        await compactor(store, janitor, shard=Shard(index, 2)).round()
        mine = set(janitor.taken())
        assert not mine & tidied
        tidied |= mine
    assert tidied == set(ORGS)


@pytest.mark.parametrize("shard", ["1/3", "0/1", " 2/3 "])
def test_a_shard_setting_reads_as_k_of_n(shard: str) -> None:
    assert str(Shard.of(Settings(compactor_shard=shard))) == shard.strip()


@pytest.mark.parametrize("bad", ["3/3", "0/0", "1", "a/b", "-1/2", "1/-2", "", "1/2/3", "½/2"])
def test_a_bad_shard_setting_is_refused_saying_what_it_takes(
    bad: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValidationError, match=r"USAGE_COMPACTOR_SHARD=.*write k/n.*0 <= k < n"):
        Settings(compactor_shard=bad)
    monkeypatch.setenv("USAGE_COMPACTOR_SHARD", bad)
    with pytest.raises(ValidationError, match="USAGE_COMPACTOR_SHARD"):
        Settings()


def test_the_command_refuses_a_bad_shard_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("USAGE_COMPACTOR_SHARD", "2/2")
    load_settings.cache_clear()
    try:
        assert main(["compactor"]) == MISCONFIGURED
    finally:
        load_settings.cache_clear()
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("usage-export compactor: USAGE_COMPACTOR_SHARD='2/2' is not a shard")
