"""Schedules in the object store: ``schedules/{org_id}/{schedule_id}.json`` in the
aggregates bucket, beside the API keys, written conditionally (``If-None-Match`` on
create, ``If-Match`` on every update) so that a pause, a resume and the scheduler's
progress never overwrite each other.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import replace

from shared import codec
from shared.adapters.object_store import ObjectStore
from shared.clock import Clock, system_clock
from shared.contracts.export_buckets import BUCKET_NAMES, BucketUnit
from shared.contracts.ids import ID_RULE, is_valid_id
from shared.domain.schedules import Schedule, pause, resume, schedule_problem
from shared.domain.window import to_ms
from shared.errors import PreconditionFailed, StoreRefused, UsageExportError

log = logging.getLogger(__name__)

SCHEDULES_PREFIX = "schedules/"
_ATTEMPTS = 5


class ScheduleError(UsageExportError):
    """A schedule operation that cannot be done (invalid schedule, unknown id)."""


def schedule_object(org_id: str, schedule_id: str) -> str:
    for value in (org_id, schedule_id):
        if not is_valid_id(value):
            raise ScheduleError(f"{value!r} is not a valid id: must be {ID_RULE}")
    return f"{SCHEDULES_PREFIX}{org_id}/{schedule_id}.json"


def _body(schedule: Schedule) -> bytes:
    # SeaweedFS's ETag is the body's MD5: a nonce keeps an ETag from ever repeating.
    return codec.dumps(schedule.to_json() | {"nonce": uuid.uuid4().hex})


class ScheduleStore:
    """Create, read, list and change schedules."""

    def __init__(self, store: ObjectStore, *, clock: Clock = system_clock) -> None:
        self._store = store
        self._clock = clock
        #: Each listed key's listing ETag and what its GET read (None: unreadable), so
        #: that a listing reads again only the records that changed since the last one.
        self._listed: dict[str, tuple[str, Schedule | None]] = {}

    def new(
        self,
        org_id: str,
        data_type: str,
        every: str,
        timezone: str,
        *,
        group_by: str | None = None,
        bucket: str | None = None,
        export_format: str | None = None,
        destination: str | None = None,
        callback_url: str | None = None,
    ) -> Schedule:
        """A schedule created now with a fresh id; raises :class:`ScheduleError` when its
        periods' requests would be refused (a ``callback_url`` is checked for its type
        here; its callers vet where it resolves, as the exporter does for each period)."""
        if not is_valid_id(org_id):
            raise ScheduleError(f"org {org_id!r} is not a valid id: must be {ID_RULE}")
        if every not in BUCKET_NAMES:
            raise ScheduleError(f"every {every!r} is unknown: use one of {', '.join(BUCKET_NAMES)}")
        now_ms = to_ms(self._clock())
        schedule = Schedule(
            schedule_id=str(uuid.uuid4()),
            org_id=org_id,
            data_type=data_type,
            every=BucketUnit(every),
            timezone=timezone,
            created_ms=now_ms,
            group_by=group_by,
            bucket=bucket,
            format=export_format,
            destination=destination,
            callback_url=callback_url,
        )
        problem = schedule_problem(schedule, now_ms)
        if problem is not None:
            raise ScheduleError(problem)
        return schedule

    async def create(self, schedule: Schedule) -> Schedule:
        key = schedule_object(schedule.org_id, schedule.schedule_id)
        etag = await self._store.put(key, _body(schedule), if_none_match=True)
        return replace(schedule, etag=etag)

    async def get(self, org_id: str, schedule_id: str) -> Schedule | None:
        """The schedule, or None (missing, unreadable, or not this workspace's)."""
        stored = await self._store.get(schedule_object(org_id, schedule_id))
        if stored is None:
            return None
        try:
            schedule = Schedule.from_json(codec.loads(stored.body), stored.etag)
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable schedule %s/%s: ignored", org_id, schedule_id)
            return None
        if (schedule.org_id, schedule.schedule_id) != (org_id, schedule_id):
            log.warning("schedule record %s/%s names another: ignored", org_id, schedule_id)
            return None
        return schedule

    async def list_for(self, org_id: str | None = None) -> list[Schedule]:
        """Every schedule (of ``org_id``, or of all workspaces), oldest first. A record
        whose listing ETag is the one of the previous listing is not read again: a round
        costs one paged LIST plus one GET per changed schedule, not one GET per schedule."""
        prefix = SCHEDULES_PREFIX if org_id is None else f"{SCHEDULES_PREFIX}{org_id}/"
        if org_id is not None:
            schedule_object(org_id, "x")  # the org id's check
        found: list[Schedule] = []
        listed: dict[str, tuple[str, Schedule | None]] = {}
        for item in await self._store.list_objects(prefix):
            org, _, name = item.key.removeprefix(SCHEDULES_PREFIX).partition("/")
            schedule_id = name.removesuffix(".json")
            if not (is_valid_id(org) and is_valid_id(schedule_id)):
                continue
            known = self._listed.get(item.key)
            if item.etag and known is not None and known[0] == item.etag:
                schedule = known[1]  # unchanged since the last listing: not read again
            else:
                schedule = await self.get(org, schedule_id)
            listed[item.key] = (item.etag, schedule)
            if schedule is not None:
                found.append(schedule)
        # Forget what is gone (deleted schedules): the cache holds the latest listing only.
        for key in [key for key in self._listed if key.startswith(prefix)]:
            del self._listed[key]
        self._listed.update(listed)
        return sorted(found, key=lambda s: (s.created_ms, s.schedule_id))

    async def update(
        self, org_id: str, schedule_id: str, change: Callable[[Schedule], Schedule]
    ) -> Schedule:
        """Apply ``change`` to the stored schedule with ``If-Match``, reading it again
        after a lost race. Raises :class:`ScheduleError` for an unknown schedule."""
        key = schedule_object(org_id, schedule_id)
        for _ in range(_ATTEMPTS):
            current = await self.get(org_id, schedule_id)
            if current is None:
                raise ScheduleError(f"workspace {org_id} has no schedule {schedule_id}")
            changed = change(current)
            if changed == current:
                return current
            try:
                etag = await self._store.put(key, _body(changed), if_match=current.etag)
            except PreconditionFailed:
                continue
            except StoreRefused:
                # AWS answers 404 (not 412) to If-Match on a key deleted meanwhile.
                if await self._store.head(key) is None:
                    raise ScheduleError(
                        f"workspace {org_id} has no schedule {schedule_id}"
                    ) from None
                raise
            return replace(changed, etag=etag)
        raise PreconditionFailed(f"schedule {key} kept changing")

    async def pause(self, org_id: str, schedule_id: str) -> Schedule:
        now_ms = to_ms(self._clock())
        return await self.update(org_id, schedule_id, lambda s: pause(s, now_ms))

    async def resume(self, org_id: str, schedule_id: str) -> Schedule:
        now_ms = to_ms(self._clock())
        return await self.update(org_id, schedule_id, lambda s: resume(s, now_ms))

    async def delete(self, org_id: str, schedule_id: str) -> None:
        """Delete the record under this workspace's prefix, readable or not (an
        unreadable record, ignored by the scheduler, can be removed the same way)."""
        key = schedule_object(org_id, schedule_id)
        if await self._store.head(key) is None:
            raise ScheduleError(f"workspace {org_id} has no schedule {schedule_id}")
        await self._store.delete(key)
