"""The demo's schedule: a daily users export of one workspace, created as if four days
ago, so that the scheduler running in the demo catches up the days that have closed
(each with its grace) and the exporter answers each of them once.

Backdating is the demo's only trick: a schedule's first period is the first that starts
after its creation (contract §3a), so a schedule created now would export tomorrow.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from rich.console import Console

from services.scheduler.store import ScheduleStore
from shared.adapters.export_client import ExportClient
from shared.adapters.s3 import S3ObjectStore
from shared.clock import Clock
from shared.contracts.completions import ExportCompletion
from shared.domain.schedules import due_periods, period_request_id
from shared.domain.window import to_ms
from shared.settings import Settings

BACKDATED = timedelta(days=4)
_WAIT_S = 120.0


async def schedule_round_trip(
    settings: Settings, org_id: str, console: Console, clock: Clock
) -> bool:
    """True when every period of the schedule due now was exported successfully."""
    now = clock()
    created_at = now - BACKDATED
    async with ExportClient(settings) as client:
        async with S3ObjectStore(settings, settings.aggregates_bucket) as store:
            schedules = ScheduleStore(store, clock=lambda: created_at)
            schedule = await schedules.create(schedules.new(org_id, "users", "day", "UTC"))
        due = due_periods(schedule, to_ms(now), grace_ms=int(settings.schedule_grace_s * 1000))
        ids = [period_request_id(schedule.schedule_id, period) for period in due]
        try:
            completions: list[ExportCompletion] = await asyncio.gather(
                *(client.wait(request_id, within_s=_WAIT_S) for request_id in ids)
            )
        except TimeoutError:
            console.print(f"schedule: the scheduler did not publish {len(ids)} periods in time")
            return False
    files = [c.data.filePath if c.data is not None else f"failed: {c.error}" for c in completions]
    console.print(
        f"schedule {schedule.schedule_id[:8]}…: {org_id}'s users every day in UTC, created "
        f"{BACKDATED.days} days back for the demo; the scheduler exported the {len(due)} "
        "closed days once each:"
    )
    for name in files:
        console.print(f"  {name}")
    return bool(due) and all(completion.success for completion in completions)
