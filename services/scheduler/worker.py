"""The scheduler's loop: every ``scheduler_interval_s`` list the schedules and, for each
active one, publish the export request of every due period not yet published, oldest
first, recording ``published_through`` (``If-Match``) after each.

Exactly once without coordination: a period's request id is derived from the schedule
and the period (``shared.domain.schedules.period_request_id``), and the exporter answers
a request id once (its request ledger). A crash between a publication and its progress
record, a second replica, or a lost race on the record publishes the same id again,
which is answered from the ledger without a second file. Progress is recorded only after
the broker acknowledged the request, so a period is never recorded unpublished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from services.scheduler.store import ScheduleError, ScheduleStore
from shared.clock import Clock, system_clock
from shared.domain.schedules import Period, Schedule, due_periods, period_request
from shared.domain.window import to_ms
from shared.errors import UsageExportError
from shared.observability import SchedulerMetrics

log = logging.getLogger(__name__)


class RequestPublisher(Protocol):
    async def publish(self, message: dict[str, Any]) -> None:
        """Publish one export request; return once the broker acknowledged it."""
        ...


@dataclass
class SchedulerStats:
    rounds: int = 0
    published: int = 0
    skipped: int = 0
    failures: int = 0


def _advanced(period: Period) -> Callable[[Schedule], Schedule]:
    """The change that records ``period`` as published (never moves progress back), and
    forgets the pauses that ended by its end: no later period can end inside them, so the
    record does not grow with every pause and resume."""

    def change(current: Schedule) -> Schedule:
        if current.published_through is not None and current.published_through >= period.last_day:
            return current
        pauses = tuple(pause for pause in current.pauses if pause[1] > period.end_ms)
        return replace(current, published_through=period.last_day, pauses=pauses)

    return change


class _BrokerFailed(Exception):
    """A publication failed: the broker is every schedule's, so the round ends."""


class Scheduler:
    """Publishes the due periods of the stored schedules."""

    def __init__(
        self,
        schedules: ScheduleStore,
        publisher: RequestPublisher,
        *,
        interval_s: float,
        grace_s: float,
        clock: Clock = system_clock,
        metrics: SchedulerMetrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._schedules = schedules
        self._publisher = publisher
        self._interval_s = interval_s
        self._grace_ms = round(grace_s * 1000)
        self._clock = clock
        self.stats = SchedulerStats()
        self._stop: asyncio.Event | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """A round every ``interval_s`` until ``stop`` is set."""
        while not stop.is_set():
            await self.run_round(stop)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval_s)

    async def run_round(self, stop: asyncio.Event | None = None) -> None:
        """One pass over every schedule; a failure is logged and left for the next round.
        A ``stop`` set meanwhile ends the round after the publication in progress is
        recorded (a catch-up round can be long; SIGTERM must not wait for it)."""
        self._stop = stop
        self.stats.rounds += 1
        if self._metrics is not None:
            self._metrics.rounds.inc()
        try:
            schedules = await self._schedules.list_for(None)
        except UsageExportError as exc:
            self._failed()
            log.warning("cannot list the schedules: %s; next round in %gs", exc, self._interval_s)
            return
        except Exception as exc:  # an unexpected failure of the store's client: next round
            self._failed()
            log.error(
                "cannot list the schedules; next round in %gs", self._interval_s, exc_info=exc
            )
            return
        for schedule in schedules:
            if self._stopping():
                return
            try:
                await self._publish_due(schedule)
            except _BrokerFailed as exc:
                # Every other schedule would wait for the same broker's timeout in turn.
                self._failed()
                log.error(
                    "publishing schedule %s/%s's request failed; the round ends, next in %gs",
                    schedule.org_id,
                    schedule.schedule_id,
                    self._interval_s,
                    exc_info=exc.__cause__,
                )
                return
            except (UsageExportError, OSError) as exc:
                self._failed()
                log.warning(
                    "schedule %s/%s: %s; next round in %gs",
                    schedule.org_id,
                    schedule.schedule_id,
                    exc,
                    self._interval_s,
                )
            except Exception as exc:  # the broker's errors (aiokafka) too: next round
                self._failed()
                log.error(
                    "schedule %s/%s failed", schedule.org_id, schedule.schedule_id, exc_info=exc
                )

    def _stopping(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    def _failed(self) -> None:
        self.stats.failures += 1
        if self._metrics is not None:
            self._metrics.failures.inc()

    async def _publish_due(self, schedule: Schedule) -> None:
        for period in due_periods(schedule, to_ms(self._clock()), grace_ms=self._grace_ms):
            through = schedule.published_through
            if through is not None and through >= period.last_day:
                continue  # another replica published it since this round listed
            if schedule.skipped(period):
                self.stats.skipped += 1
                if self._metrics is not None:
                    self._metrics.skipped.inc()
                log.info(
                    "schedule %s: period %s ended while paused: skipped",
                    schedule.schedule_id,
                    period.name,
                )
            else:
                message = period_request(schedule, period)
                try:
                    await self._publisher.publish(message)
                except Exception as exc:  # aiokafka's errors, a timeout
                    raise _BrokerFailed(str(exc)) from exc
                self.stats.published += 1
                if self._metrics is not None:
                    self._metrics.published.inc()
                log.info(
                    "schedule %s: published period %s as request %s",
                    schedule.schedule_id,
                    period.name,
                    message["request_id"],
                )
            try:
                schedule = await self._schedules.update(
                    schedule.org_id, schedule.schedule_id, _advanced(period)
                )
            except ScheduleError:  # deleted meanwhile
                return
            if not schedule.active or self._stopping():  # paused meanwhile, or stopping
                return
