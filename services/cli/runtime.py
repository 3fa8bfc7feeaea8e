"""Process plumbing shared by the service commands: logging and signal handling."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("botocore").setLevel(logging.WARNING)


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
