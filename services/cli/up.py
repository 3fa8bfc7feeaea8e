"""``usage-export up``: the embedded broker and object store, provisioned, plus the services.

The zero-set-up way to run everything on one machine (contract §7): servers come from
pip-installed wheels, run as children that die with this process, and stop cleanly on
Ctrl-C or SIGTERM. The HTTP API listens on ``--api-port`` (default 8080) and
``USAGE_API_URL`` in ``usage.env`` names it. The services' metrics ports are the settings'
(9464-9469) when free, else any free port, or what ``--*-metrics-port`` says (0: any free
port); ``usage.env`` names the ones chosen. ``--kafka-port``, ``--s3-port`` and
``--api-port`` take 0 for any free port too. ``--infra-only`` leaves the services to
separate processes, which reach the servers through ``DATA_DIR/usage.env``.

It is for one user's machine: every listener is on loopback, the data dir is the
owner's alone, and the banner names the env file instead of printing its secret keys.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import signal
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from services.cli.runtime import setup_logging
from shared.embedded import EmbeddedStack, write_env_file
from shared.embedded.ports import choose_ports, free_ports, require_free_port
from shared.errors import EmbeddedStackError
from shared.settings import Settings

log = logging.getLogger(__name__)

ServiceMain = Callable[..., Coroutine[Any, Any, object]]

# (name, module, coroutine function ``f(settings, *, stop)``), imported lazily so that
# ``up --infra-only`` works before a service exists and never pays for its imports.
SERVICES: tuple[tuple[str, str, str], ...] = (
    ("ingest", "services.ingest.app", "run_ingest"),
    ("compactor", "services.compactor.app", "run_compactor"),
    ("exporter", "services.exporter.app", "run_exporter"),
    ("api", "services.api.app", "run_api"),
    ("delivery", "services.delivery.app", "run_delivery"),
    ("scheduler", "services.scheduler.app", "run_scheduler"),
)
SERVICE_DRAIN_S = 60.0  # services flush and commit after stop is set; then we cancel
ENV_FILE_NAME = "usage.env"
DEFAULT_API_PORT = 8080
#: (service, setting) of each /metrics and /health listener ``up`` runs.
METRICS_PORTS = (
    ("ingest", "ingest_metrics_port"),
    ("compactor", "compactor_metrics_port"),
    ("exporter", "exporter_metrics_port"),
    ("api", "api_metrics_port"),
    ("delivery", "delivery_metrics_port"),
    ("scheduler", "scheduler_metrics_port"),
)


def _port(text: str) -> int:
    port = int(text)
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port")
    return port


def _port_or_any(text: str) -> int:
    return 0 if int(text) == 0 else _port(text)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def register(subparsers: Any) -> None:
    # One add_argument per option, spelled out: the shapes repeat across commands by design.
    parser = subparsers.add_parser(
        "up",
        help="run a local broker, object store, ingest, compactor, exporter, HTTP API, "
        "webhook delivery and scheduler (embedded)",
        description="Start a Kafka-compatible broker (Tansu, in memory) and an S3-compatible "
        "store (SeaweedFS, on disk under --data-dir) from pip-installed binaries, "
        "create topics and buckets, write DATA_DIR/usage.env, then run ingest, the "
        "compactor, exporter, the HTTP API, webhook delivery and the scheduler until Ctrl-C "
        "or SIGTERM. Nothing is left running afterwards.",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".usage-export"),
        help="object store data, logs and usage.env (default: ./.usage-export)",
    )
    parser.add_argument(
        "--kafka-port",
        type=_port_or_any,
        default=9092,
        help="broker port on 127.0.0.1 (default: 9092; 0: any free port)",
    )
    parser.add_argument(
        "--s3-port",
        type=_port_or_any,
        default=8333,
        help="S3 port on 127.0.0.1 (default: 8333; 0: any free port)",
    )
    parser.add_argument(
        "--api-port",
        type=_port_or_any,
        default=DEFAULT_API_PORT,
        help=f"HTTP API port on 127.0.0.1 (default: {DEFAULT_API_PORT}; 0: any free port)",
    )
    for service, setting in METRICS_PORTS:
        parser.add_argument(
            f"--{service}-metrics-port",
            type=_port_or_any,
            default=None,
            help=f"/metrics and /health of {service} on 127.0.0.1 (default: "
            f"USAGE_{setting.upper()} or {Settings.model_fields[setting].default} when free, "
            f"else any free port; 0: any free port)",
        )
    parser.add_argument(
        "--events-partitions",
        type=_positive,
        default=None,
        help="partitions of a newly created events topic (default: USAGE_EVENTS_PARTITIONS or 12)",
    )
    parser.add_argument(
        "--infra-only", action="store_true", help="start only the broker and the store"
    )
    parser.add_argument("--log-level", default="INFO")
    parser.set_defaults(func=run_up)


def run_up(args: argparse.Namespace) -> int:
    """Exit status: 0 after a clean stop, 1 when start-up or a service failed."""
    setup_logging(args.log_level)
    console = Console()
    try:
        return asyncio.run(_up(args, console))
    except (EmbeddedStackError, ValidationError) as exc:  # expected failures: no traceback
        Console(stderr=True).print(
            f"[bold red]usage-export up:[/] {escape(str(exc))}", soft_wrap=True
        )
        return 1
    except asyncio.CancelledError:  # a second Ctrl-C: children die with us regardless
        return 130


async def _up(args: argparse.Namespace, console: Console) -> int:
    stop = asyncio.Event()
    _install_signal_handlers(stop, console)
    kafka_port, s3_port, api_port = _listening_ports(args)
    base = Settings().model_copy(update={"api_port": api_port, "api_host": "127.0.0.1"})
    if args.events_partitions is not None:
        base = base.model_copy(update={"events_partitions": args.events_partitions})
    if not args.infra_only:
        require_free_port(api_port, "HTTP API")
        for service, _ in METRICS_PORTS:
            if port := getattr(args, f"{service}_metrics_port"):
                require_free_port(port, f"{service} metrics")
    stack = EmbeddedStack(args.data_dir, kafka_port=kafka_port, s3_port=s3_port, settings=base)
    console.print(
        f"Starting the embedded broker and object store in {escape(str(stack.data_dir))} …"
    )
    if not await _start_unless_stopped(stack, stop):
        return 0
    env_path = stack.data_dir / ENV_FILE_NAME
    try:
        env = stack.env()
        settings = stack.settings
        if not args.infra_only:
            # Chosen once the servers listen, so no server can take a port chosen here.
            settings = settings.model_copy(update=_metrics_ports(args, settings))
            env["USAGE_API_URL"] = f"http://127.0.0.1:{api_port}"
            for _, setting in METRICS_PORTS:
                env[f"USAGE_{setting.upper()}"] = str(getattr(settings, setting))
        write_env_file(env_path, env)
        _print_ready(console, stack, env_path, env)
        services = [] if args.infra_only else _load_services(console)
        return await _run_until_stopped(services, stack, settings, stop, console)
    finally:
        env_path.unlink(missing_ok=True)  # its addresses die with the servers
        await stack.stop()
        console.print("Stopped: broker, object store and services.")


def _listening_ports(args: argparse.Namespace) -> tuple[int, int, int]:
    """The broker's, the store's and the API's ports: as asked, and for each 0 (by
    convention "any") a free one, distinct from the others; usage.env names them all."""
    asked = (args.kafka_port, args.s3_port, args.api_port)
    spare = iter(port for port in free_ports(3) if port not in asked)
    kafka, s3, api = (port or next(spare) for port in asked)
    return kafka, s3, api


def _metrics_ports(args: argparse.Namespace, settings: Settings) -> dict[str, int]:
    """setting -> port: the flag's (checked free before start-up), else the setting's when
    free, else any free one (0 asks for that)."""
    wanted = {
        setting: (
            flag
            if (flag := getattr(args, f"{service}_metrics_port")) is not None
            else int(getattr(settings, setting))
        )
        for service, setting in METRICS_PORTS
    }
    return choose_ports(wanted)


def _install_signal_handlers(stop: asyncio.Event, console: Console) -> None:
    """First signal: stop gracefully. Any further one: cancel, i.e. stop right now."""
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()

    def on_signal(signum: signal.Signals) -> None:
        if stop.is_set():
            console.print(f"{signum.name} again: stopping now.")
            if main_task is not None:
                main_task.cancel()
            return
        console.print(f"{signum.name}: stopping (again to force) …")
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, on_signal, signum)


async def _start_unless_stopped(stack: EmbeddedStack, stop: asyncio.Event) -> bool:
    """Start the stack; False when a signal came first (start-up is then undone)."""
    starting = asyncio.create_task(stack.start(), name="embedded-stack-start")
    stopped = asyncio.create_task(stop.wait(), name="stop-signal")
    await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if starting.done():
        starting.result()  # raises EmbeddedStackError with the reason
        return True
    starting.cancel()  # start() stops whatever it had started when cancelled
    with contextlib.suppress(asyncio.CancelledError, EmbeddedStackError):
        await starting
    return False


def _load_services(console: Console) -> list[tuple[str, ServiceMain]]:
    """The services present in this installation; a missing one is skipped with a note."""
    loaded: list[tuple[str, ServiceMain]] = []
    for name, module_name, function_name in SERVICES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name not in {module_name, module_name.rpartition(".")[0]}:
                raise  # the service exists but one of its imports is missing: a real error
            console.print(
                f"[yellow]{name}: not part of this version ({module_name} is missing), skipped[/]"
            )
            continue
        function = getattr(module, function_name, None)
        if function is None:
            console.print(f"[yellow]{name}: {module_name} has no {function_name}(), skipped[/]")
            continue
        loaded.append((name, function))
    return loaded


async def _run_until_stopped(
    services: list[tuple[str, ServiceMain]],
    stack: EmbeddedStack,
    settings: Settings,
    stop: asyncio.Event,
    console: Console,
) -> int:
    """Run the services until ``stop``; a service or server that ends on its own stops all."""
    tasks: set[asyncio.Task[object]] = {
        asyncio.create_task(main(settings, stop=stop), name=name) for name, main in services
    }
    if tasks:
        names = ", ".join(sorted(task.get_name() for task in tasks))
        console.print(f"Running {names}. Ctrl-C to stop.")
    else:
        console.print("No services to run: broker and store only. Ctrl-C to stop.")
    stopped = asyncio.create_task(stop.wait(), name="stop-signal")
    crashed = asyncio.create_task(stack.watch(), name="server-watch")
    await asyncio.wait({*tasks, stopped, crashed}, return_when=asyncio.FIRST_COMPLETED)
    status = 0
    if crashed.done():
        console.print(f"[bold red]{escape(crashed.result())}[/]", soft_wrap=True)
        status = 1
    stopped.cancel()
    crashed.cancel()
    stop.set()  # no-op after a signal; otherwise it stops the remaining services
    if tasks:
        _, late = await asyncio.wait(tasks, timeout=SERVICE_DRAIN_S)
        for task in late:
            console.print(
                f"[yellow]{task.get_name()} did not stop within {SERVICE_DRAIN_S:.0f} s; "
                f"cancelling[/]"
            )
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
    return max(status, _report_outcomes(tasks, console))


def _report_outcomes(tasks: set[asyncio.Task[object]], console: Console) -> int:
    status = 0
    for task in sorted(tasks, key=lambda task: task.get_name()):
        if task.cancelled():
            continue
        error = task.exception()
        if error is not None:
            log.error("%s failed", task.get_name(), exc_info=error)
            console.print(f"[bold red]{task.get_name()} failed:[/] {escape(repr(error))}")
            status = 1
    return status


def _print_ready(
    console: Console, stack: EmbeddedStack, env_path: Path, env: dict[str, str]
) -> None:
    settings = stack.settings
    table = Table(
        title="usage-export: embedded infrastructure ready", show_header=False, title_justify="left"
    )
    table.add_column(style="bold")
    table.add_column()
    table.add_row("Kafka broker", f"{settings.kafka_bootstrap} (Tansu, in memory)")
    table.add_row("S3 store", f"{settings.s3_endpoint} (SeaweedFS)")
    table.add_row("Store data", escape(str(stack.data_dir / "seaweedfs")))
    table.add_row("Buckets", f"{settings.aggregates_bucket}, {settings.exports_bucket}")
    table.add_row("Logs", escape(str(stack.log_dir)))
    if "USAGE_API_URL" in env:
        table.add_row("HTTP API", f"{env['USAGE_API_URL']} (keys: usage-export keys create)")
        metrics = ", ".join(
            f"{service} {env[f'USAGE_{setting.upper()}']}" for service, setting in METRICS_PORTS
        )
        table.add_row("Metrics ports", f"{metrics} (/metrics, /health/ready)")
    table.add_row("Environment", f"{escape(str(env_path))} (addresses and keys; owner only)")
    console.print(table)
    console.print("Reach them from another shell with:")
    console.print(f"  set -a; . {escape(str(env_path))}; set +a", highlight=False, soft_wrap=True)
