"""``usage-export demo``: the whole pipeline on this machine, end to end, in a minute or two.

Starts the embedded broker and store (free loopback ports, a temporary data directory),
runs ingest, the compactor and exporter in this process, produces a simulated year of
usage for a few workspaces, waits until ingest has committed all of it, requests every
export type (with and without subgroups, some in non-UTC timezones), downloads the CSV
files into ``./exports``, makes one call through the HTTP API with a fresh API key, asks
one export with a ``callback_url`` and checks the signed webhook that arrives, creates a
daily schedule (backdated four days) and waits for the scheduler's exports of the closed
days, and prints a summary — then stops everything it started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition
from rich.console import Console
from rich.table import Table

from services.cli.demo_api import api_round_trip
from services.cli.demo_schedule import schedule_round_trip
from services.cli.demo_webhook import webhook_round_trip
from services.cli.runtime import setup_logging
from shared.adapters.export_client import ExportClient, download, export_request
from shared.adapters.kafka import make_consumer, make_producer
from shared.clock import Clock, system_clock
from shared.contracts.completions import ExportCompletion
from shared.settings import Settings
from shared.simulation import SimConfig, simulate

_COMMIT_WAIT_S = 180.0
_SCHEDULER_EVERY = {"scheduler_interval_s": 2.0}


def register(subparsers: Any) -> None:
    # One add_argument per option, spelled out: the shapes repeat across commands by design.
    parser = subparsers.add_parser(
        "demo",
        help="run the whole pipeline locally and write sample exports to ./exports",
        description="Start the embedded broker and store, run ingest, the compactor and "
        "exporter, simulate a year of usage, request every export type and save the CSV "
        "files.",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("exports"),
        help="where the CSV files go (default ./exports)",
    )
    parser.add_argument("--events", type=int, default=20_000, help="simulated events")
    parser.add_argument("--orgs", type=int, default=3, help="simulated workspaces")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="keep the broker's and store's data here (default: a temporary "
        "directory, deleted afterwards)",
    )
    parser.add_argument("--log-level", default="WARNING")
    parser.set_defaults(func=_main)


@dataclass(frozen=True, slots=True)
class DemoExport:
    org_id: str
    data_type: str
    group_by: str | None
    timezone: str
    format: str = "csv"
    bucket: str | None = None


def demo_exports(orgs: int) -> list[DemoExport]:
    """Every type and subgroup for the BYOK workspace, two typed formats, one export per
    month, then other zones and workspaces."""
    byok = "ws-0001"
    plan = [
        DemoExport(byok, data_type, group_by, "UTC")
        for data_type, group_by in (
            ("users", None),
            ("users", "model"),
            ("agents", None),
            ("agents", "model"),
            ("api_keys", None),
            ("api_keys", "model"),
            ("projects", None),
            ("models", None),
            ("models", "source"),
            ("models", "deployment"),
        )
    ]
    plan.append(DemoExport(byok, "users", None, "UTC", "parquet"))
    plan.append(DemoExport(byok, "models", "source", "UTC", "ndjson"))
    plan.append(DemoExport(byok, "models", None, "UTC", bucket="month"))
    if orgs >= 2:
        plan.append(DemoExport("ws-0002", "users", None, "Europe/Berlin"))
    if orgs >= 3:  # ws-0003 turned user-level data off: names and emails are left out
        plan.append(DemoExport("ws-0003", "agents", None, "Asia/Kolkata"))
        plan.append(DemoExport("ws-0003", "users", None, "America/St_Johns"))
    return plan


def window_start(today: date) -> date:
    """The first day of the month eleven months back: a full year's worth of months."""
    month = today.year * 12 + today.month - 1 - 11
    return date(month // 12, month % 12 + 1, 1)


def _main(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    console = Console()
    return asyncio.run(_run(args, console))


@contextlib.asynccontextmanager
async def _data_dir(given: Path | None) -> AsyncIterator[Path]:
    if given is not None:
        yield given
        return
    path = Path(tempfile.mkdtemp(prefix="usage-export-demo-"))
    try:
        yield path
    finally:
        await asyncio.to_thread(shutil.rmtree, path, True)


async def _run(args: argparse.Namespace, console: Console, *, clock: Clock = system_clock) -> int:
    from services.compactor.app import run_compactor
    from services.delivery.app import run_delivery
    from services.exporter.app import run_exporter
    from services.ingest.app import run_ingest
    from services.scheduler.app import run_scheduler
    from shared.embedded import EmbeddedStack

    started = time.monotonic()
    async with _data_dir(args.data_dir) as data_dir:
        with console.status("starting the embedded broker and object store ..."):
            stack = EmbeddedStack(data_dir)
            await stack.start()
        try:
            settings = stack.settings
            console.print(f"broker {settings.kafka_bootstrap}, store {settings.s3_endpoint}")
            stop = asyncio.Event()
            services = [
                asyncio.create_task(run_ingest(settings, stop=stop)),
                asyncio.create_task(run_compactor(settings, stop=stop)),
                asyncio.create_task(run_exporter(settings, stop=stop)),
                asyncio.create_task(run_delivery(settings, stop=stop)),
                # As in `up`, looking for due periods every 2 s (the demo's schedule).
                asyncio.create_task(
                    run_scheduler(settings.model_copy(update=_SCHEDULER_EVERY), stop=stop)
                ),
            ]
            try:
                # One reading of the clock: the simulated span ends there, and every
                # window (the exports' and the API call's) ends on its UTC day.
                now = clock()
                results = await _pipeline(args, settings, console, now)
                today = now.date()
                api_ok = await api_round_trip(
                    settings, "ws-0001", window_start(today), today, console
                )
                hook_ok = await webhook_round_trip(
                    settings, "ws-0001", window_start(today), today, console, clock
                )
                schedule_ok = await schedule_round_trip(settings, "ws-0001", console, clock)
            finally:
                stop.set()
                await asyncio.gather(*services, return_exceptions=True)
        finally:
            with console.status("stopping the embedded stack ..."):
                await stack.stop()
    console.print(summary_table(results, args.out))
    failed = [result for result in results if not result[1].success]
    console.print(
        f"{len(results) - len(failed)} of {len(results)} exports written to "
        f"[bold]{args.out}[/] in {time.monotonic() - started:.0f} s"
    )
    return 1 if failed or not (api_ok and hook_ok and schedule_ok) else 0


async def _pipeline(
    args: argparse.Namespace, settings: Settings, console: Console, now: datetime
) -> list[tuple[DemoExport, ExportCompletion, float]]:
    with console.status(f"simulating and producing {args.events:,} events ..."):
        ends = await produce_simulation(
            settings, SimConfig(seed=args.seed, orgs=args.orgs, events=args.events, end=now)
        )
    with console.status("waiting until ingest has committed every event ..."):
        await wait_until_committed(settings, ends)
    console.print(f"ingested {sum(ends.values()):,} records")
    today = now.date()
    exports = demo_exports(args.orgs)
    with console.status(f"requesting {len(exports)} exports ..."):
        async with ExportClient(settings) as client:
            results = await asyncio.gather(
                *(_export(client, item, window_start(today), today, args.out) for item in exports)
            )
    return list(results)


async def _export(
    client: ExportClient, item: DemoExport, start: date, end: date, out: Path
) -> tuple[DemoExport, ExportCompletion, float]:
    began = time.monotonic()
    completion = await client.request(
        export_request(
            item.org_id,
            item.data_type,
            start.isoformat(),
            end.isoformat(),
            timezone=item.timezone,
            group_by=item.group_by,
            requested_by="usage-export-demo",
            export_format=item.format,
            bucket=item.bucket,
        )
    )
    if completion.success and completion.data is not None:
        await download(completion.data.downloadUrl, out / completion.data.filePath)
    return item, completion, time.monotonic() - began


async def produce_simulation(settings: Settings, config: SimConfig) -> dict[int, int]:
    """Produce the simulated stream; returns partition -> end offset (from the acks)."""
    producer = make_producer(settings, max_request_size=4 * 1024 * 1024)
    await producer.start()
    try:
        futures = [
            await producer.send(settings.topic_events, key=record.key, value=record.value)
            for record in simulate(config)
        ]
        ends: dict[int, int] = {}
        for metadata in await asyncio.gather(*futures):
            ends[metadata.partition] = max(ends.get(metadata.partition, 0), metadata.offset + 1)
        return ends
    finally:
        await producer.stop()


async def wait_until_committed(settings: Settings, ends: dict[int, int]) -> None:
    """Until the ingest group's committed offsets reach ``ends`` (contract: then an export
    sees every event)."""
    consumer = make_consumer(settings, group_id=settings.ingest_group)  # never subscribes
    await consumer.start()
    try:
        async with asyncio.timeout(_COMMIT_WAIT_S):
            while True:
                behind = 0
                for partition, end in ends.items():
                    tp = TopicPartition(settings.topic_events, partition)
                    behind += max(0, end - (await consumer.committed(tp) or 0))
                if not behind:
                    return
                await asyncio.sleep(0.5)
    finally:
        await consumer.stop()


def summary_table(results: list[tuple[DemoExport, ExportCompletion, float]], out: Path) -> Table:
    """One line per export; files land under ``out`` by their contract file path."""
    through = sorted(
        completion.data.ingestedThrough
        for _, completion, _ in results
        if completion.data is not None and completion.data.ingestedThrough is not None
    )
    fresh = f"; every event appended before {through[0]} is counted" if through else ""
    table = Table(
        title=f"usage exports, saved under {out}/",
        caption=f"status 200: the file is at its filePath under the output directory{fresh}",
    )
    columns = ("workspace", "export", "timezone", "format", "status", "rows", "bytes", "s")
    for column in columns:
        numeric = column in {"rows", "bytes", "s"}
        table.add_column(column, justify="right" if numeric else "left")
    for item, completion, seconds in results:
        data, error = completion.data, completion.error
        status = (
            "[green]200[/]"
            if data is not None
            else f"[red]{error.status if error else '?'}[/] {error.message if error else ''}"
        )
        table.add_row(
            item.org_id,
            item.data_type
            + (f" by {item.group_by}" if item.group_by else "")
            + (f" per {item.bucket}" if item.bucket else ""),
            item.timezone,
            item.format,
            status,
            f"{data.recordCount:,}" if data else "",
            f"{data.bytes:,}" if data else "",
            f"{seconds:.1f}",
        )
    return table
