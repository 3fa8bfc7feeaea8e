"""Process plumbing shared by the service commands: logging and signal handling."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable

from shared.adapters import logging as structured_logging

_FORMATS = {"json": True, "text": False, "auto": None}


def setup_logging(level: str = "INFO") -> None:
    """JSON lines when stderr is not a terminal (or ``USAGE_LOG_FORMAT=json``), readable
    text in a terminal (or ``USAGE_LOG_FORMAT=text``)."""
    choice = os.environ.get("USAGE_LOG_FORMAT", "auto").strip().lower()
    structured_logging.setup_logging(level, json=_FORMATS.get(choice))


def run_until_signalled(service: Callable[[asyncio.Event], Awaitable[None]]) -> int:
    """Run ``service(stop)``; SIGTERM or SIGINT set ``stop`` so it drains and returns."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await service(stop)

    asyncio.run(main())
    return 0
