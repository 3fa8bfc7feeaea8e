"""A TCP proxy on loopback between the services and the object store, which a test can cut,
restore, or arm to freeze the connection that sends a given request.

It runs its own event loop on a thread of its own, so it keeps forwarding while the test's
loop is busy (or blocked in a subprocess wait). Point a service at it with
``settings.model_copy(update={"s3_endpoint": proxy.endpoint})``.

Faults:

* ``cut("reset")``: every open connection is reset (RST) and new ones are accepted and
  reset at once — a store that is down, as the client sees it.
* ``cut("blackhole")``: open connections stop carrying bytes and new ones are accepted and
  then hang — a network partition; on ``restore()`` they are reset.
* ``arm(pattern)``: the first connection whose client-to-store bytes match ``pattern``
  (for example the request line of a PUT of a CSV file) is frozen before those bytes are
  forwarded, so the store never sees that request; ``fired`` tells when. ``release()``
  resets the frozen connection.
* ``arm(pattern, hold="response")``: the matching request is forwarded, and the store's
  answer to it is held back instead (``answered`` tells when the store has answered: the
  request took effect, the client does not know it yet).
* ``arm(pattern, accept=...)``: only a match that ``accept`` approves fires (it can look
  at ``requests``, the request lines the proxy has seen so far).

``requests`` lists every request line (``"PUT /bucket/key"``) sent through the proxy, in
the order the proxy read them.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import struct
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

Mode = Literal["forward", "reset", "blackhole"]
Hold = Literal["request", "response"]
T = TypeVar("T")

_CHUNK = 64 * 1024
_TAIL = 512  # bytes kept from the previous chunk, so a pattern split across reads matches
_LOOPBACK = "127.0.0.1"
_REQUEST_LINE = re.compile(rb"(GET|PUT|POST|DELETE|HEAD) (/\S*) HTTP/1\.[01]\r\n")


@dataclass
class ProxyStats:
    connections: int = 0
    reset: int = 0  # connections reset by a fault (open ones and refused new ones)
    held: int = 0  # connections accepted and left hanging by a blackhole
    bytes_up: int = 0
    bytes_down: int = 0
    cuts: int = 0
    triggers_fired: int = 0


@dataclass(eq=False)
class _Connection:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    frozen: bool = False
    held: Trigger | None = None  # the store's answer to a request is held back
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class Trigger:
    """One armed pattern; ``fired`` is set once a connection was frozen (or its answer
    held) on it; with ``hold="response"``, ``answered`` once the store has answered."""

    def __init__(
        self,
        pattern: re.Pattern[bytes],
        hold: Hold = "request",
        accept: Callable[[re.Match[bytes]], bool] | None = None,
    ) -> None:
        self.pattern = pattern
        self.hold = hold
        self.accept = accept
        self.fired = threading.Event()
        self.answered = threading.Event()
        self.matched: bytes = b""
        self.answer: bytes = b""  # the first bytes of the held answer

    async def wait(self, timeout_s: float) -> bool:
        return await asyncio.to_thread(self.fired.wait, timeout_s)

    async def wait_answered(self, timeout_s: float) -> bool:
        return await asyncio.to_thread(self.answered.wait, timeout_s)


class FaultProxy:
    """``with FaultProxy(host, port) as proxy:`` forwards ``proxy.endpoint`` to the target."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self.stats = ProxyStats()
        self._mode: Mode = "forward"
        self._trigger: Trigger | None = None
        self._connections: set[_Connection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._changed: asyncio.Condition | None = None
        self._error: BaseException | None = None
        self.port = 0
        self.requests: list[str] = []

    @classmethod
    def in_front_of(cls, endpoint: str) -> FaultProxy:
        """A proxy for an ``http://host:port`` endpoint."""
        host, port = endpoint.removeprefix("http://").rstrip("/").rsplit(":", 1)
        return cls(host, int(port))

    @property
    def endpoint(self) -> str:
        return f"http://{_LOOPBACK}:{self.port}"

    @property
    def target_endpoint(self) -> str:
        """The store itself, bypassing the proxy (for the test's own checks)."""
        return f"http://{self._target[0]}:{self._target[1]}"

    @property
    def mode(self) -> Mode:
        return self._mode

    # ---- lifecycle (called from the test's thread) -------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._serve, name="fault-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10.0) or self._error is not None:
            self.stop()
            raise RuntimeError(f"fault proxy did not start: {self._error!r}")

    def stop(self) -> None:
        """Reset every connection, stop listening, end the thread (idempotent)."""
        loop, stopped, thread = self._loop, self._stopped, self._thread
        if loop is not None and stopped is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(stopped.set)
        if thread is not None:
            thread.join(15.0)
        self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- faults (called from the test's thread) -----------------------------------------
    def cut(self, mode: Literal["reset", "blackhole"] = "reset") -> None:
        self._call(self._set_mode(mode))

    def restore(self) -> None:
        self._call(self._set_mode("forward"))

    def arm(
        self,
        pattern: bytes | re.Pattern[bytes],
        *,
        hold: Hold = "request",
        accept: Callable[[re.Match[bytes]], bool] | None = None,
    ) -> Trigger:
        compiled = re.compile(pattern) if isinstance(pattern, bytes) else pattern
        trigger = Trigger(compiled, hold, accept)
        self._call(self._arm(trigger))
        return trigger

    def release(self) -> None:
        """Disarm, and reset the connection a trigger froze (or whose answer it held)."""
        self._call(self._release())

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        loop = self._loop
        if loop is None:
            coroutine.close()
            raise RuntimeError("the fault proxy is not running")
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(15.0)

    # ---- the proxy's own loop ----------------------------------------------------------------
    def _serve(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - handed to start(); a thread must not die silently
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._changed = asyncio.Condition()
        server = await asyncio.start_server(self._accept, _LOOPBACK, 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stopped.wait()
        finally:
            server.close()
            connections = list(self._connections)
            tasks = [task for connection in connections for task in connection.tasks]
            for connection in connections:
                self._reset(connection)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await server.wait_closed()

    async def _set_mode(self, mode: Mode) -> None:
        assert self._changed is not None
        previous, self._mode = self._mode, mode
        if mode != "forward" and previous == "forward":
            self.stats.cuts += 1
        if mode == "reset" or (mode == "forward" and previous == "blackhole"):
            for connection in list(self._connections):
                if not (mode == "forward" and (connection.frozen or connection.held)):
                    self._reset(connection)
        async with self._changed:
            self._changed.notify_all()

    async def _arm(self, trigger: Trigger) -> None:
        self._trigger = trigger

    async def _release(self) -> None:
        assert self._changed is not None
        self._trigger = None
        for connection in list(self._connections):
            if connection.frozen or connection.held:
                self._reset(connection)
        async with self._changed:
            self._changed.notify_all()

    def _reset(self, connection: _Connection) -> None:
        """Abort both sides with RST (SO_LINGER 0), so clients see a reset, not a close."""
        self.stats.reset += 1
        self._connections.discard(connection)
        for writer in (connection.client, connection.upstream):
            if writer is None:
                continue
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._changed is not None
        self.stats.connections += 1
        connection = _Connection(client=writer)
        self._connections.add(connection)
        if self._mode == "reset":
            self._reset(connection)
            return
        if self._mode == "blackhole":
            self.stats.held += 1
            async with self._changed:
                await self._changed.wait_for(lambda: self._mode != "blackhole")
            if connection in self._connections:
                self._reset(connection)
            return
        try:
            upstream_reader, upstream = await asyncio.open_connection(*self._target)
        except OSError:
            self._reset(connection)
            return
        connection.upstream = upstream
        if connection not in self._connections:  # cut while we were connecting
            self._reset(connection)
            self._connections.discard(connection)
            return
        current = asyncio.current_task()
        assert current is not None
        up = asyncio.create_task(self._pump(reader, upstream, connection, upward=True))
        down = asyncio.create_task(self._pump(upstream_reader, writer, connection, upward=False))
        connection.tasks = [current, up, down]
        await asyncio.gather(up, down, return_exceptions=True)
        if connection in self._connections:
            self._connections.discard(connection)
            for side in (writer, upstream):
                side.close()

    def _inspect(self, connection: _Connection, tail: bytes, data: bytes) -> None:
        """Fire the armed trigger on a match, then log the chunk's request lines (after,
        so that ``accept`` sees only the requests before the matching one)."""
        window = tail + data
        trigger = self._trigger
        if trigger is not None:
            match = trigger.pattern.search(window)
            if match is not None and (trigger.accept is None or trigger.accept(match)):
                if trigger.hold == "request":
                    connection.frozen = True
                else:
                    connection.held = trigger
                self.stats.triggers_fired += 1
                trigger.matched = match.group(0)
                trigger.fired.set()
                self._trigger = None
        for line in _REQUEST_LINE.finditer(window):
            if line.end() > len(tail):  # not counted with the previous chunk
                self.requests.append(f"{line.group(1).decode()} {line.group(2).decode()}")

    async def _pump(
        self,
        source: asyncio.StreamReader,
        target: asyncio.StreamWriter,
        connection: _Connection,
        *,
        upward: bool,
    ) -> None:
        assert self._changed is not None
        tail = b""
        try:
            while True:
                data = await source.read(_CHUNK)
                if not data:
                    with contextlib.suppress(OSError):
                        if target.can_write_eof():
                            target.write_eof()
                    return
                if upward:
                    self._inspect(connection, tail, data)
                    tail = (tail + data)[-_TAIL:]
                elif connection.held is not None and not connection.held.answered.is_set():
                    connection.held.answer = data[:_TAIL]
                    connection.held.answered.set()
                async with self._changed:
                    await self._changed.wait_for(
                        lambda: (
                            (
                                self._mode == "forward"
                                and not connection.frozen
                                and (upward or connection.held is None)
                            )
                            or connection not in self._connections
                        )
                    )
                if connection not in self._connections:
                    return
                if upward:
                    self.stats.bytes_up += len(data)
                else:
                    self.stats.bytes_down += len(data)
                target.write(data)
                await target.drain()
        except (OSError, asyncio.IncompleteReadError):
            if connection in self._connections:
                self._reset(connection)
