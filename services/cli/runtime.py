"""Process plumbing shared by the service commands: logging and signal handling."""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError

from shared.adapters import logging as structured_logging
from shared.errors import ConfigurationError
from shared.settings import Settings, load_settings
from shared.startup import StoppedWhileWaiting

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


def register_service(
    subparsers: Any, name: str, *, help: str, description: str, runner: str
) -> None:
    """A sub-command that runs one service, ``runner`` (``module:function``), until
    SIGTERM; the module is imported only when the command runs."""
    parser = subparsers.add_parser(name, help=help, description=description)
    parser.add_argument("--log-level", default="INFO")
    parser.set_defaults(func=functools.partial(_run_service, runner=runner))


def _run_service(args: argparse.Namespace, *, runner: str) -> int:
    setup_logging(args.log_level)
    module_name, _, function_name = runner.partition(":")
    run = getattr(importlib.import_module(module_name), function_name)
    settings = settings_or_refusal()

    async def service(stop: asyncio.Event) -> None:
        await run(settings, stop=stop)

    try:
        return run_until_signalled(service)
    except StoppedWhileWaiting:  # SIGTERM before the broker and the store answered
        return 0


def settings_or_refusal() -> Settings:
    """The settings; a value they refuse is a :class:`ConfigurationError` naming the
    variable and what it takes (one line from the command line, exit 2)."""
    try:
        return load_settings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            message = str(error["msg"]).removeprefix("Value error, ")
            name = "USAGE_" + "_".join(str(part) for part in error["loc"]).upper()
            named = not error["loc"] or name in message
            problems.append(message if named else f"{name}: {message}")
        raise ConfigurationError("; ".join(problems)) from exc
