"""The waiting map of the API: completions resolve only their own workspace's request,
concurrent callers share one wait, and the map and the memory of completions are bounded.
No broker: records are handed to ``accept`` as the reader would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio

from services.api.waiter import CompletionWaiter, TooManyWaiting
from shared import codec
from shared.contracts.completions import ExportCompletion
from shared.settings import Settings


def completion(org_id: str, request_id: str, status: int = 404) -> bytes:
    failed = ExportCompletion.failed(request_id, org_id, status, "nothing")
    return codec.dumps(failed.model_dump(mode="json"))


@pytest_asyncio.fixture
async def make_waiter() -> AsyncIterator[Callable[..., CompletionWaiter]]:
    made: list[CompletionWaiter] = []

    def make(**options: int) -> CompletionWaiter:
        made.append(CompletionWaiter(Settings(), **options))
        return made[-1]

    yield make
    for waiter in made:
        await waiter.stop()  # closes its (never started) consumer


async def test_a_completion_resolves_only_its_workspaces_wait(
    make_waiter: Callable[..., CompletionWaiter],
) -> None:
    waiter = make_waiter(max_waiting=10)
    async with waiter.waiting(("ws-a", "r1")) as mine, waiter.waiting(("ws-a", "r1")) as same:
        assert same is mine  # concurrent callers of one request share the wait
        waiter.accept(completion("ws-b", "r1"))  # another tenant, same request id
        assert not mine.done()
        waiter.accept(b"not json")
        waiter.accept(None)
        waiter.accept(completion("ws-a", "r1"))
        assert mine.done()
        assert mine.result().org_id == "ws-a"
    assert not waiter.is_waiting(("ws-a", "r1"))
    assert waiter.recent(("ws-b", "r1")) is not None


async def test_the_waiting_map_and_recent_memory_are_bounded(
    make_waiter: Callable[..., CompletionWaiter],
) -> None:
    waiter = make_waiter(max_waiting=1, recent_size=2)
    async with waiter.waiting(("ws-a", "r1")):
        with pytest.raises(TooManyWaiting):
            async with waiter.waiting(("ws-a", "r2")):
                pass
        assert waiter.waiting_count == 1
    assert waiter.waiting_count == 0
    for index in range(3):
        waiter.accept(completion("ws-a", f"r{index}"))
    assert waiter.recent(("ws-a", "r0")) is None
    assert waiter.recent(("ws-a", "r2")) is not None


async def test_a_stopped_reader_refuses_new_waits_at_once(
    make_waiter: Callable[..., CompletionWaiter],
) -> None:
    waiter = make_waiter(max_waiting=10)

    async def died() -> None:
        raise RuntimeError("broker gone")

    waiter._reader = asyncio.create_task(died())
    await asyncio.wait([waiter._reader])  # until the reader has died
    with pytest.raises(TooManyWaiting, match="stopped"):
        async with waiter.waiting(("ws-a", "r1")):
            pass
    await waiter.stop()  # the reader's error does not stop the shutdown
