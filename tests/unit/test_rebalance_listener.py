"""The one consumer-group listener both workers give aiokafka."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiokafka import TopicPartition

from shared.adapters.rebalance import RevokeListener


def test_a_revoke_reaches_the_worker_and_an_assignment_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    revoked: list[set[TopicPartition]] = []

    async def on_revoked(partitions: set[TopicPartition]) -> None:
        revoked.append(partitions)

    listener = RevokeListener(on_revoked, logging.getLogger("test.rebalance"))
    gone = {TopicPartition("usage.events", 3)}
    with caplog.at_level(logging.INFO, logger="test.rebalance"):
        asyncio.run(listener.on_partitions_revoked(gone))
        asyncio.run(
            listener.on_partitions_assigned(
                {TopicPartition("usage.events", 1), TopicPartition("usage.events", 0)}
            )
        )
    assert revoked == [gone]
    assert [record.getMessage() for record in caplog.records] == [
        "assigned [('usage.events', 0), ('usage.events', 1)]"
    ]
