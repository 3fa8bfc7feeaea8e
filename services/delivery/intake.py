"""Completions in, durable pending deliveries out, offsets committed after.

A completion is looked at further only when its record carries the exporter's
``usage-export-callback`` header; then the request's record
(``requests/{org}/{request_id}.json``) says the vetted callback URL, and the completion's
bytes, exactly as published, become a pending delivery. The batch's offsets are
committed once every delivery of it is durable: a crash before that reads the batch
again, and the pending objects' keys make the second reading create nothing new.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import CommitFailedError, KafkaError

from services.delivery.metrics import DeliveryMetrics
from services.delivery.pending import PendingStore, new_delivery
from shared import codec
from shared.adapters.request_ledger import RequestLedger
from shared.clock import Clock, system_clock
from shared.contracts.completions import CALLBACK_HEADER
from shared.contracts.ids import is_valid_id
from shared.retry import Failure, retry, store_backoff
from shared.settings import Settings

log = logging.getLogger(__name__)

_POLL_MS = 200
_MAX_RECORDS = 500


def wants_callback(record: Any) -> bool:
    return any(name == CALLBACK_HEADER for name, _ in (record.headers or ()))


class Intake:
    def __init__(
        self,
        settings: Settings,
        *,
        consumer: AIOKafkaConsumer,
        ledger: RequestLedger,
        pending: PendingStore,
        wake: asyncio.Event,
        metrics: DeliveryMetrics | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self._settings = settings
        self._consumer = consumer
        self._ledger = ledger
        self._pending = pending
        self._wake = wake
        self._metrics = metrics
        self._clock = clock

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            batch = await self._consumer.getmany(timeout_ms=_POLL_MS, max_records=_MAX_RECORDS)
            if not batch:
                continue
            for records in batch.values():
                for record in records:
                    if wants_callback(record):
                        await self._durably(record)
            offsets = {tp: records[-1].offset + 1 for tp, records in batch.items()}
            try:
                await self._consumer.commit(offsets)
            except (CommitFailedError, KafkaError) as exc:
                log.warning("offset commit failed (%s); the batch is read again", exc)

    async def _durably(self, record: Any) -> None:
        """Take the record, retrying while the store is away (nothing is committed
        meanwhile: the completions wait in the topic, not in memory)."""

        def warn(failure: Failure) -> None:
            log.warning(
                "completion at offset %s not taken yet (%s); retrying in %.1fs",
                record.offset,
                failure.error,
                failure.delay_s,
            )

        await retry(lambda: self._take(record), store_backoff(self._settings), on_retry=warn)

    async def _take(self, record: Any) -> None:
        try:
            completion = codec.loads(record.value) if record.value else None
        except codec.JSONDecodeError:
            completion = None
        if not isinstance(completion, dict):
            log.warning("completion at offset %s is not a JSON object: no webhook", record.offset)
            return
        org_id, request_id = completion.get("org_id"), completion.get("request_id")
        if not (
            isinstance(org_id, str)
            and isinstance(request_id, str)
            and is_valid_id(org_id)
            and is_valid_id(request_id)
        ):
            return  # an unreadable request's 400: it has no record, so no callback
        try:
            request = await self._ledger.peek(org_id, request_id)
        except (ValueError, KeyError, TypeError) as exc:  # the store's errors are not these
            log.error(
                "request record of %s/%s is unreadable (%r): no webhook for the completion "
                "at offset %s",
                org_id,
                request_id,
                exc,
                record.offset,
            )
            return
        if request is None or request.callback_url is None:
            return  # refused at request time, or asked none
        delivery = new_delivery(
            org_id, request_id, request.callback_url, record.value, self._clock()
        )
        if await self._pending.add(delivery):
            log.info("webhook of %s pending for %s", request_id, org_id)
            if self._metrics is not None:
                self._metrics.accepted.inc()
            self._wake.set()
