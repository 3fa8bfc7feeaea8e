"""The ``usage-export`` command line: one entry point, one module per sub-command.

Each sub-command module exposes ``register(subparsers)`` which adds its parser and
sets ``func`` to a callable ``(argparse.Namespace) -> int`` (the exit status).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback
from collections.abc import Sequence

from services.cli.unreachable import UNREACHABLE, unreachable_dependency
from shared.errors import ConfigurationError
from shared.settings import load_settings

#: Exit status of a command stopped by a setting to fix (the line says which).
MISCONFIGURED = 2

# Sub-command modules, in the order `--help` lists them.
_COMMANDS: tuple[str, ...] = (
    "services.cli.up",
    "services.cli.ingest",
    "services.cli.compactor",
    "services.cli.simulate",
    "services.cli.replay",
    "services.cli.exporter",
    "services.cli.api",
    "services.cli.delivery",
    "services.cli.scheduler",
    "services.cli.keys",
    "services.cli.webhooks",
    "services.cli.schedules",
    "services.cli.request",
    "services.cli.demo",
    "services.cli.dlq",
    "services.cli.status",
    "services.cli.contracts",
)


#: Commands that run a service: they keep aiokafka's own log lines.
_SERVICES = frozenset({"ingest", "compactor", "exporter", "api", "delivery", "scheduler", "up"})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="usage-export",
        description="Workspace usage exports from Kafka usage events (services and tools).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in _COMMANDS:
        module = importlib.import_module(module_name)
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = str(getattr(args, "log_level", "")).upper() == "DEBUG"
    if not debug and args.command not in _SERVICES:
        # A command's own answer says when the broker is away; aiokafka's log lines
        # ("Unable connect to ...") would only repeat it. Services keep them.
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        status: int = args.func(args)
    except ConfigurationError as exc:
        if debug:
            traceback.print_exc()
        print(f"usage-export {args.command}: {exc}", file=sys.stderr)
        return MISCONFIGURED
    except Exception as exc:
        line = unreachable_dependency(exc, load_settings())
        if line is None:
            raise
        if debug:
            traceback.print_exc()
        print(f"usage-export {args.command}: {line}", file=sys.stderr)
        return UNREACHABLE
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
