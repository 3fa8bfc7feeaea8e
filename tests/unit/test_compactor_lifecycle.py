"""Start and stop of the compactor service (``services/compactor/app.py``), as
tests/unit/test_lifecycle.py checks the others: a failure at any start step stops what
was started, in reverse; its readiness asks the store only (it uses no broker); at stop
the workspace in flight finishes, within ``JANITOR_FINISH_S``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from services.compactor import app as compactor_app
from shared.settings import Settings
from tests.unit.test_lifecycle import (
    FakeResource,
    Injected,
    Journal,
    Step,
    expected,
    fake_dependencies,
    fake_server,
    fake_store,
    never,
    no_task_named,
    steps_to_fail,
)

COMPACTOR: list[Step] = [
    ("aggregates store", True),
    ("observability server", True),
    ("dependencies", False),
    ("storage format", False),
    ("compactor", False),  # its loop: ends when stopped
]

Run = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


@contextlib.contextmanager
def compactor_faked(fail_at: str | None, run: Run | None = None) -> Iterator[Journal]:
    journal = Journal(fail_at)
    settings = Settings()

    async def started_run(stop: asyncio.Event) -> None:
        await journal.start("compactor")
        if run is not None:
            await run(stop)

    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(compactor_app, "S3ObjectStore", fake_store(journal, settings))
        monkeypatch.setattr(compactor_app, "ObservabilityServer", fake_server(journal))
        fake_dependencies(compactor_app, journal, monkeypatch)

        async def storage_format(*_: Any) -> None:
            await journal.start("storage format")

        monkeypatch.setattr(compactor_app, "wait_for_storage_format", storage_format)
        monkeypatch.setattr(compactor_app, "TableStore", SimpleNamespace(of=lambda _: None))
        monkeypatch.setattr(compactor_app, "Janitor", lambda *_, **__: None)
        loop = SimpleNamespace(run=started_run)
        monkeypatch.setattr(compactor_app, "Compactor", lambda *_, **__: loop)
        monkeypatch.setattr(compactor_app, "JANITOR_FINISH_S", 0.05)
        yield journal


@pytest.mark.parametrize("fail_at", steps_to_fail(COMPACTOR))
async def test_compactor_failing_start_stops_what_was_started(fail_at: str) -> None:
    served: list[str] = []
    with compactor_faked(fail_at) as journal, pytest.raises(Injected, match=fail_at):
        await compactor_app.run_compactor(
            Settings(), stop=asyncio.Event(), on_serving=served.append
        )
    assert journal.entries == expected(COMPACTOR, fail_at)
    assert no_task_named("compactor")
    names = steps_to_fail(COMPACTOR)
    serving = names.index(fail_at) > names.index("observability server")
    assert served == ([FakeResource.url] if serving else [])


async def test_compactor_stops_in_reverse_order_and_is_ready_on_the_store_alone() -> None:
    stop = asyncio.Event()

    async def until_stopped(stop: asyncio.Event) -> None:
        await stop.wait()

    with compactor_faked(None, until_stopped) as journal:
        running = asyncio.create_task(compactor_app.run_compactor(Settings(), stop=stop))
        await asyncio.sleep(0.01)
        assert not running.done()
        stop.set()
        await asyncio.wait_for(running, 5)
    assert journal.entries == expected(COMPACTOR, None)
    assert journal.checks == ["store", "not draining"]


async def test_the_workspace_in_flight_finishes_at_stop_within_its_bound() -> None:
    stop = asyncio.Event()
    finished: list[str] = []

    async def one_more_workspace(stop: asyncio.Event) -> None:
        await stop.wait()
        await asyncio.sleep(0.01)
        finished.append("workspace")

    with compactor_faked(None, one_more_workspace):
        stop.set()
        await compactor_app.run_compactor(Settings(), stop=stop)
    assert finished == ["workspace"]

    async def endless(stop: asyncio.Event) -> None:
        await never()

    with compactor_faked(None, endless):  # cut after JANITOR_FINISH_S (0.05 s here)
        await asyncio.wait_for(compactor_app.run_compactor(Settings(), stop=stop), 5)
    assert no_task_named("compactor")


async def test_a_loop_that_fails_on_its_own_ends_the_service_with_its_error() -> None:
    async def broken(stop: asyncio.Event) -> None:
        raise RuntimeError("not the store's failure")

    with compactor_faked(None, broken), pytest.raises(RuntimeError, match="not the store"):
        await compactor_app.run_compactor(Settings(), stop=asyncio.Event())
