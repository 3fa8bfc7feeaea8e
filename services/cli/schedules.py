"""``usage-export schedules create|list|pause|resume|delete --org ORG``: scheduled exports.

A schedule is stored under ``schedules/{org}/{id}.json`` in the aggregates bucket; the
scheduler service (``usage-export scheduler``) publishes its periods' requests.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from services.scheduler.store import ScheduleError, ScheduleStore
from shared.adapters.callback_vetting import CallbackRefused, CallbackVetter
from shared.adapters.s3 import S3ObjectStore
from shared.contracts.export_buckets import BUCKET_NAMES
from shared.contracts.export_formats import FORMAT_NAMES
from shared.domain.schedules import Schedule
from shared.domain.window import format_instant
from shared.settings import load_settings

T = TypeVar("T")
_TYPES = ("users", "assistants", "agents", "api_keys", "projects", "models")


def register(subparsers: Any) -> None:
    # One add_argument per option, spelled out: the shapes repeat across commands by design.
    parser = subparsers.add_parser(
        "schedules",
        help="create, list, pause, resume and delete scheduled exports",
        description="A schedule exports every day, ISO week or calendar month of its "
        "timezone, from the first period that starts after it is created; the scheduler "
        "service publishes each period's request once the period ended "
        "USAGE_SCHEDULE_GRACE_S ago. Periods that end while a schedule is paused are not "
        "exported.",
    )
    actions = parser.add_subparsers(dest="schedules_action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a schedule; prints its id last")
    create.add_argument("--org", required=True, help="workspace id (org_id)")
    create.add_argument(
        "--type", dest="data_type", required=True, choices=_TYPES, help="the export's type"
    )
    create.add_argument("--every", required=True, choices=BUCKET_NAMES, help="the period")
    create.add_argument("--timezone", required=True, help="IANA timezone of the periods")
    create.add_argument("--group-by", default=None, help="subgroup rows, as for request")
    create.add_argument(
        "--bucket", choices=BUCKET_NAMES, default=None, help="rows per day, week or month"
    )
    create.add_argument(
        "--format", dest="export_format", choices=FORMAT_NAMES, default=None, help="default csv"
    )
    create.add_argument(
        "--destination", default=None, help="a destination the exporter has configured"
    )
    create.add_argument(
        "--callback-url",
        default=None,
        metavar="URL",
        help="https URL that receives each period's completion as a signed POST",
    )
    create.set_defaults(func=_create)
    listing = actions.add_parser("list", help="list a workspace's schedules")
    listing.add_argument("--org", required=True)
    listing.set_defaults(func=_list)
    for action, func, text in (
        ("pause", _pause, "stop publishing (periods ending while paused are skipped)"),
        ("resume", _resume, "publish again, from the period in progress on"),
        ("delete", _delete, "delete a schedule"),
    ):
        command = actions.add_parser(action, help=text)
        command.add_argument("--org", required=True)
        command.add_argument("schedule_id", metavar="SCHEDULE_ID")
        command.set_defaults(func=func)


def _with_schedules(call: Callable[[ScheduleStore], Awaitable[T]]) -> T:
    settings = load_settings()

    async def run() -> T:
        async with S3ObjectStore(settings, settings.aggregates_bucket) as store:
            return await call(ScheduleStore(store))

    return asyncio.run(run())


def describe(schedule: Schedule) -> str:
    """One line: id, state, what and how often, progress."""
    created = format_instant(schedule.created_ms, schedule.zone)
    through = schedule.published_through or "nothing yet"
    extras = [
        f"{name} {value}"
        for name, value in (
            ("group-by", schedule.group_by),
            ("bucket", schedule.bucket),
            ("format", schedule.format),
            ("destination", schedule.destination),
            ("callback-url", schedule.callback_url),
        )
        if value is not None
    ]
    return (
        f"{schedule.schedule_id}  {schedule.state}  {schedule.data_type} every "
        f"{schedule.every.value} in {schedule.timezone}  created {created}  "
        f"published through {through}" + "".join(f"  {extra}" for extra in extras)
    )


def _refused(exc: ScheduleError) -> int:
    print(f"usage-export schedules: {exc}", file=sys.stderr)
    return 1


def _create(args: argparse.Namespace) -> int:
    vetter = CallbackVetter.of(load_settings())

    async def create(schedules: ScheduleStore) -> Schedule:
        if args.callback_url is not None:
            try:
                await vetter.vet(args.callback_url)
            except CallbackRefused as exc:
                raise ScheduleError(f"callback_url refused: {exc}") from None
        schedule = schedules.new(
            args.org,
            args.data_type,
            args.every,
            args.timezone,
            group_by=args.group_by,
            bucket=args.bucket,
            export_format=args.export_format,
            destination=args.destination,
            callback_url=args.callback_url,
        )
        return await schedules.create(schedule)

    try:
        schedule = _with_schedules(create)
    except ScheduleError as exc:
        return _refused(exc)
    print(f"created: {describe(schedule)}")
    print(schedule.schedule_id)
    return 0


def _list(args: argparse.Namespace) -> int:
    try:
        found = _with_schedules(lambda schedules: schedules.list_for(args.org))
    except ScheduleError as exc:
        return _refused(exc)
    if not found:
        print(f"workspace {args.org} has no schedules")
    for schedule in found:
        print(describe(schedule))
    return 0


def _change(args: argparse.Namespace, verb: str) -> int:
    try:
        schedule = _with_schedules(
            lambda schedules: getattr(schedules, verb)(args.org, args.schedule_id)
        )
    except ScheduleError as exc:
        return _refused(exc)
    print(f"{verb}d: {describe(schedule)}")
    return 0


def _pause(args: argparse.Namespace) -> int:
    return _change(args, "pause")


def _resume(args: argparse.Namespace) -> int:
    return _change(args, "resume")


def _delete(args: argparse.Namespace) -> int:
    try:
        _with_schedules(lambda schedules: schedules.delete(args.org, args.schedule_id))
    except ScheduleError as exc:
        return _refused(exc)
    print(f"deleted schedule {args.schedule_id}")
    return 0
