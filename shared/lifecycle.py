"""One way for a service to start and stop its resources: an ``AsyncExitStack``.

A service enters every resource into one stack, in the order it starts them (as
quixstreams' ``Application.run`` does with an ``ExitStack``); the stack stops them in
the reverse order when the service returns, raises or is cancelled, and a failure at
any start step stops what was started before it. Nothing is started outside the stack.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Coroutine
from typing import Any, Protocol, Self, TypeVar


class Startable(Protocol):
    """A resource with ``async start()`` and ``async stop()`` (aiokafka's shape)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class StartStopContext(ABC):
    """``async with`` for a resource with ``start()`` and ``stop()``: entering starts it,
    leaving stops it, however the block ends. Its ``start`` undoes itself on failure."""

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


S = TypeVar("S", bound=Startable)
T = TypeVar("T")


async def started(stack: contextlib.AsyncExitStack, resource: S) -> S:
    """Start ``resource``; the stack stops it when it unwinds.

    Its stop is pushed before its start: a start that fails half-way (a client opened, a
    connection not) is undone by its stop. Every ``stop`` used here tolerates a resource
    that never started, and does nothing the second time.
    """
    stack.push_async_callback(resource.stop)
    await resource.start()
    return resource


def in_background(
    stack: contextlib.AsyncExitStack,
    coroutine: Coroutine[Any, Any, T],
    *,
    name: str,
    finish_within_s: float = 0.0,
) -> asyncio.Task[T]:
    """Run ``coroutine`` as a task that the stack cancels (and awaits) when it unwinds.

    With ``finish_within_s``, a task that ends by itself once the service stops (it
    watches the same ``stop`` event) is first given that long to do so: cancelling an
    await on a worker thread leaves the thread running while the process exits, so a
    pass that is writing (a Delta commit) would be cut mid-write.

    The task's own exception is not raised by the unwinding: a caller that cares reads
    it from the task before the stack closes.
    """
    task = asyncio.create_task(coroutine, name=name)
    stack.push_async_callback(_cancel_and_wait, task, finish_within_s)
    return task


async def _cancel_and_wait(task: asyncio.Task[Any], finish_within_s: float = 0.0) -> None:
    if finish_within_s > 0:
        await asyncio.wait({task}, timeout=finish_within_s)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
