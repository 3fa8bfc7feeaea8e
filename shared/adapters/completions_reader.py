"""The completions topic read from its end: the one reader behind the HTTP API's waiter,
the command line's export client and the tests.

The consumer has no group: :meth:`CompletionsReader.start` assigns every partition of
the completions topic and seeks each to its end as it is then — the larger of
ListOffsets(latest) and the fetched high watermark, because the embedded broker answers
ListOffsets(latest) short — so nothing published before ``start`` returns is read and
nothing published after it is missed. :meth:`CompletionsReader.read` is one poll: the
completions it fetched (in order within a partition); a record that is not a completion is logged
and skipped.
"""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from shared import codec
from shared.adapters.kafka import make_consumer
from shared.adapters.kafka_offsets import end_offsets, wait_assigned
from shared.contracts.completions import ExportCompletion
from shared.settings import Settings

log = logging.getLogger(__name__)


def parse_completion(value: bytes | None) -> ExportCompletion | None:
    """One record value of the completions topic; None (logged) if it is not one."""
    if value is None:
        return None
    try:
        return ExportCompletion.model_validate(codec.loads(value))
    except (ValueError, ValidationError):
        log.warning("ignoring an unreadable completion (%d bytes)", len(value))
        return None


class CompletionsReader:
    """``await reader.start()``, then ``await reader.read()`` in a loop; ``stop()`` at the end."""

    def __init__(
        self, settings: Settings, *, fetch_max_wait_ms: int = 500, poll_ms: int = 500
    ) -> None:
        self._topic = settings.topic_export_completions
        self._poll_ms = poll_ms
        self._consumer: AIOKafkaConsumer = make_consumer(
            settings, group_id=None, fetch_max_wait_ms=fetch_max_wait_ms
        )

    async def start(self) -> None:
        """Start reading at the topic's end as it is now (nothing older is ever read)."""
        await self._consumer.start()
        partitions = await wait_assigned(self._consumer, self._topic)
        for tp, offset in (await end_offsets(self._consumer, partitions)).items():
            self._consumer.seek(tp, offset)

    async def stop(self) -> None:
        await self._consumer.stop()

    async def read(self) -> list[ExportCompletion]:
        """The completions of one poll (waits up to ``poll_ms`` for some to arrive)."""
        batch = await self._consumer.getmany(timeout_ms=self._poll_ms)
        completions = []
        for records in batch.values():
            for record in records:
                completion = parse_completion(record.value)
                if completion is not None:
                    completions.append(completion)
        return completions
