"""``usage-export scheduler``: run the scheduler service against the configured broker and store."""

from __future__ import annotations

from typing import Any

from services.cli.runtime import register_service


def register(subparsers: Any) -> None:
    register_service(
        subparsers,
        "scheduler",
        help="publish the export requests of scheduled exports as their periods end",
        description="Run the scheduler service: every USAGE_SCHEDULER_INTERVAL_S seconds it "
        "lists the schedules (usage-export schedules) and publishes an ordinary export "
        "request for every period that ended USAGE_SCHEDULE_GRACE_S ago and was not "
        "published yet, oldest first. Any number of replicas may run: a period's request "
        "id is derived from the schedule and the period, and the exporter answers it once.",
        runner="services.scheduler.app:run_scheduler",
    )
