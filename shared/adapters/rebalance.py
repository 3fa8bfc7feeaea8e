"""The consumer group listener both workers give aiokafka: a revoke goes to the worker
(which makes its state durable and commits), an assignment is logged."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiokafka import ConsumerRebalanceListener, TopicPartition


class RevokeListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Calls ``on_revoked`` before partitions go; logs what is assigned to ``log``."""

    def __init__(
        self,
        on_revoked: Callable[[set[TopicPartition]], Awaitable[None]],
        log: logging.Logger,
    ) -> None:
        self._on_revoked = on_revoked
        self._log = log

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._log.info("assigned %s", sorted((tp.topic, tp.partition) for tp in assigned))
