"""Start and stop: each service enters its resources into one ``AsyncExitStack``.

A failure injected at each start step (the step, replaced by a fake, raises) must stop
everything started before it, in reverse order, start nothing after it, and propagate.
A start that fails is followed by that resource's own stop (it may have half-started).
The real resources are replaced by fakes that write to a journal; no broker, no store.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from aiohttp import web

from services.api import app as api_app
from services.exporter import app as exporter_app
from services.ingest import app as ingest_app
from shared.errors import StorageFormatMismatch
from shared.lifecycle import in_background, started
from shared.settings import Settings

Step = tuple[str, bool]  # a start step, and whether it has a stop to undo it


class Injected(Exception):
    """The failure a test injects at one start step."""


class Journal:
    """What the fakes were asked to do, in order; raises at the step named ``fail_at``."""

    def __init__(self, fail_at: str | None) -> None:
        self.fail_at = fail_at
        self.entries: list[str] = []
        self.checks: list[str] = []  # the observability server's readiness checks

    async def start(self, name: str) -> None:
        self.entries.append(f"start {name}")
        if name == self.fail_at:
            raise Injected(name)

    def stop(self, name: str) -> None:
        self.entries.append(f"stop {name}")


class FakeResource:
    """Stands for a store, a Kafka client, the completions waiter, a metrics server."""

    url = "http://127.0.0.1:9"
    running = True

    def __init__(self, journal: Journal, name: str) -> None:
        self._journal = journal
        self._name = name

    async def start(self) -> None:
        await self._journal.start(self._name)

    async def stop(self) -> None:
        self._journal.stop(self._name)

    def subscribe(self, topics: list[str], *, listener: Any) -> None:
        pass


class FakeWorker:
    """An ingest or exporter worker: ``run`` is a start step (it may raise too)."""

    listener = None
    stats = "fake stats"

    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    async def run(self, stop: asyncio.Event) -> None:
        await self._journal.start("worker")


def expected(steps: list[Step], fail_at: str | None) -> list[str]:
    """Starts up to and including ``fail_at`` (all without it), then stops in reverse."""
    names = [name for name, _ in steps]
    reached = steps[: names.index(fail_at) + 1] if fail_at is not None else steps
    return [f"start {name}" for name, _ in reached] + [
        f"stop {name}" for name, stoppable in reversed(reached) if stoppable
    ]


def fake_dependencies(module: Any, journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
    """The wait for the broker and the stores is a start step (it may raise too)."""

    async def wait(*_: Any, **__: Any) -> None:
        await journal.start("dependencies")

    monkeypatch.setattr(module, "wait_for_dependencies", wait)


def steps_to_fail(steps: list[Step]) -> list[str]:
    return [name for name, _ in steps]


async def never() -> None:
    await asyncio.Event().wait()


def no_task_named(name: str) -> bool:
    return not [task for task in asyncio.all_tasks() if task.get_name() == name]


def fake_store(journal: Journal, settings: Settings) -> Any:
    def store(_: Settings, bucket: str, *, max_attempts: int | None = None) -> FakeResource:
        kind = {settings.aggregates_bucket: "aggregates", settings.exports_bucket: "exports"}
        return FakeResource(journal, f"{kind[bucket]} store")

    return store


def fake_server(journal: Journal) -> Any:
    def server(registry: Any, *, host: str, port: int, checks: dict[str, Any]) -> FakeResource:
        journal.checks = list(checks)
        return FakeResource(journal, "observability server")

    return server


def fake_kafka(module: Any, journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "make_producer", lambda *_: FakeResource(journal, "producer"))
    if hasattr(module, "make_consumer"):  # the API reads completions through its waiter
        consumer = lambda *_, **__: FakeResource(journal, "consumer")  # noqa: E731
        monkeypatch.setattr(module, "make_consumer", consumer)


# ---- ingest ---------------------------------------------------------------------------------
INGEST: list[Step] = [
    ("aggregates store", True),
    ("observability server", True),
    ("dependencies", False),
    ("storage format", False),
    ("producer", True),
    ("consumer", True),
    ("worker", False),  # its run ends with the final flush and commit
]


@contextlib.contextmanager
def ingest_faked(fail_at: str | None) -> Iterator[Journal]:
    journal = Journal(fail_at)
    settings = Settings()
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(ingest_app, "S3ObjectStore", fake_store(journal, settings))
        monkeypatch.setattr(ingest_app, "ObservabilityServer", fake_server(journal))
        fake_kafka(ingest_app, journal, monkeypatch)
        fake_dependencies(ingest_app, journal, monkeypatch)

        async def storage_format(*_: Any) -> None:
            await journal.start("storage format")

        monkeypatch.setattr(ingest_app, "wait_for_storage_format", storage_format)
        monkeypatch.setattr(ingest_app, "TableStore", SimpleNamespace(of=lambda _: None))
        monkeypatch.setattr(ingest_app, "IngestWorker", lambda *_, **__: FakeWorker(journal))
        yield journal


@pytest.mark.parametrize("fail_at", steps_to_fail(INGEST))
async def test_ingest_failing_start_stops_what_was_started(fail_at: str) -> None:
    served: list[str] = []
    with ingest_faked(fail_at) as journal, pytest.raises(Injected, match=fail_at):
        await ingest_app.run_ingest(Settings(), stop=asyncio.Event(), on_serving=served.append)
    assert journal.entries == expected(INGEST, fail_at)
    names = steps_to_fail(INGEST)
    serving = names.index(fail_at) > names.index("observability server")
    assert served == ([FakeResource.url] if serving else [])


async def test_ingest_stops_in_reverse_order_after_its_final_drain() -> None:
    with ingest_faked(None) as journal:
        worker = await ingest_app.run_ingest(Settings(), stop=asyncio.Event())
    assert journal.entries == expected(INGEST, None)
    assert worker.stats == "fake stats"  # type: ignore[comparison-overlap]
    assert journal.checks == ["broker", "store", "not draining"]


# ---- exporter -------------------------------------------------------------------------------
EXPORTER: list[Step] = [
    ("aggregates store", True),
    ("exports store", True),
    ("observability server", True),
    ("dependencies", False),
    ("producer", True),
    ("ingest progress", True),
    ("consumer", True),
    ("worker", False),
]


@contextlib.contextmanager
def exporter_faked(fail_at: str | None, *, format_check: Any = never) -> Iterator[Journal]:
    journal = Journal(fail_at)
    settings = Settings()
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(exporter_app, "S3ObjectStore", fake_store(journal, settings))
        monkeypatch.setattr(exporter_app, "ObservabilityServer", fake_server(journal))
        fake_kafka(exporter_app, journal, monkeypatch)
        fake_dependencies(exporter_app, journal, monkeypatch)
        monkeypatch.setattr(exporter_app, "wait_for_storage_format", lambda *_: format_check())
        monkeypatch.setattr(exporter_app, "TableStore", SimpleNamespace(of=lambda _: None))
        progress = lambda *_, **__: FakeResource(journal, "ingest progress")  # noqa: E731
        monkeypatch.setattr(exporter_app, "IngestProgress", progress)
        monkeypatch.setattr(exporter_app, "Exporter", lambda *_, **__: None)
        monkeypatch.setattr(exporter_app, "ExporterWorker", lambda *_, **__: FakeWorker(journal))
        yield journal


@pytest.mark.parametrize("fail_at", steps_to_fail(EXPORTER))
async def test_exporter_failing_start_stops_what_was_started(fail_at: str) -> None:
    with exporter_faked(fail_at) as journal, pytest.raises(Injected, match=fail_at):
        await exporter_app.run_exporter(Settings(), stop=asyncio.Event())
    assert journal.entries == expected(EXPORTER, fail_at)
    assert no_task_named("exporter-format-check")


async def test_exporter_stops_in_reverse_order() -> None:
    with exporter_faked(None) as journal:
        await exporter_app.run_exporter(Settings(), stop=asyncio.Event())
    assert journal.entries == expected(EXPORTER, None)
    assert no_task_named("exporter-format-check")
    assert journal.checks == ["broker", "aggregates store", "exports store", "not draining"]


async def test_exporter_background_format_check_stops_it_and_is_raised() -> None:
    stop = asyncio.Event()

    async def format_1() -> None:
        raise StorageFormatMismatch("format 1 only")

    class WorkerUntilStopped(FakeWorker):
        async def run(self, stop: asyncio.Event) -> None:
            await stop.wait()  # set by the format check

    with exporter_faked(None, format_check=format_1) as journal, pytest.MonkeyPatch.context() as mp:
        mp.setattr(exporter_app, "ExporterWorker", lambda *_, **__: WorkerUntilStopped(journal))
        with pytest.raises(StorageFormatMismatch):
            await exporter_app.run_exporter(Settings(), stop=stop)
    assert stop.is_set()
    assert journal.entries == expected(EXPORTER[:-1], None)


# ---- API ------------------------------------------------------------------------------------
API: list[Step] = [
    ("aggregates store", True),
    ("exports store", True),
    ("observability server", True),
    ("dependencies", False),
    ("producer", True),
    ("completions waiter", True),
    ("api runner", True),  # its cleanup stops listening and lets requests in flight finish
    ("api site", False),  # stopped by the runner's cleanup
]


@contextlib.contextmanager
def api_faked(fail_at: str | None) -> Iterator[Journal]:
    journal = Journal(fail_at)
    settings = Settings()

    class Runner(FakeResource):
        addresses: ClassVar = [("127.0.0.1", 8080)]

        def __init__(self, application: web.Application, settings: Settings) -> None:
            super().__init__(journal, "api runner")

        async def setup(self) -> None:
            await self.start()

        async def cleanup(self) -> None:
            await self.stop()

    class Site:
        def __init__(self, runner: Runner, host: str, port: int) -> None:
            pass

        async def start(self) -> None:
            await journal.start("api site")

    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(api_app, "S3ObjectStore", fake_store(journal, settings))
        monkeypatch.setattr(api_app, "ObservabilityServer", fake_server(journal))
        fake_kafka(api_app, journal, monkeypatch)
        fake_dependencies(api_app, journal, monkeypatch)
        monkeypatch.setattr(
            api_app,
            "CompletionWaiter",
            lambda *_, **__: FakeResource(journal, "completions waiter"),
        )
        monkeypatch.setattr(api_app, "key_verifier", lambda *_: None)
        api = SimpleNamespace(application=web.Application)
        monkeypatch.setattr(api_app, "ExportApi", lambda *_, **__: api)
        monkeypatch.setattr(api_app, "ApiRunner", Runner)
        monkeypatch.setattr(api_app, "web", SimpleNamespace(TCPSite=Site))
        yield journal


@pytest.mark.parametrize("fail_at", steps_to_fail(API))
async def test_api_failing_start_stops_what_was_started(fail_at: str) -> None:
    served: list[api_app.ApiServing] = []
    with api_faked(fail_at) as journal, pytest.raises(Injected, match=fail_at):
        await api_app.run_api(Settings(), stop=asyncio.Event(), on_serving=served.append)
    assert journal.entries == expected(API, fail_at)
    assert served == []


async def test_api_stops_listening_first_then_the_rest() -> None:
    stop = asyncio.Event()
    served: list[api_app.ApiServing] = []

    def serving(where: api_app.ApiServing) -> None:
        served.append(where)
        stop.set()

    with api_faked(None) as journal:
        await api_app.run_api(Settings(), stop=stop, on_serving=serving)
    assert journal.entries == expected(API, None)
    assert journal.entries[len(API)] == "stop api runner"
    assert served == [api_app.ApiServing("http://127.0.0.1:8080", FakeResource.url)]
    assert journal.checks == [
        "broker",
        "aggregates store",
        "exports store",
        "not draining",
        "completions reader",
    ]


# ---- the helpers ----------------------------------------------------------------------------
async def test_started_stops_a_resource_whose_start_failed_half_way() -> None:
    journal = Journal("half")

    async def start_three() -> None:
        async with contextlib.AsyncExitStack() as stack:
            await started(stack, FakeResource(journal, "whole"))
            await started(stack, FakeResource(journal, "half"))
            await started(stack, FakeResource(journal, "never"))

    with pytest.raises(Injected):
        await start_three()
    assert journal.entries == ["start whole", "start half", "stop half", "stop whole"]


async def test_in_background_lets_a_stopping_task_finish_its_pass_first() -> None:
    stop = asyncio.Event()
    finished: list[str] = []

    async def one_more_pass() -> None:
        await stop.wait()
        await asyncio.sleep(0.05)  # the pass in flight when the service stops
        finished.append("pass")

    for finish_within_s, expected in ((5.0, ["pass"]), (0.0, [])):
        finished.clear()
        async with contextlib.AsyncExitStack() as stack:
            task = in_background(
                stack, one_more_pass(), name="pass-under-test", finish_within_s=finish_within_s
            )
            stop.set()
        assert finished == expected, finish_within_s
        assert task.cancelled() is (not expected)
        stop.clear()


async def test_in_background_is_cancelled_when_the_stack_unwinds() -> None:
    async with contextlib.AsyncExitStack() as stack:
        task = in_background(stack, never(), name="background-under-test")
        await asyncio.sleep(0)
        assert not task.done()
    assert task.cancelled()
