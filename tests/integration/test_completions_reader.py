"""One completions reader (``shared.adapters.completions_reader``) behind the export
client and the API's waiter, on the real broker: it starts at the topic's end, so a
completion published before it started is never read — even though the embedded broker
answers ListOffsets(latest) short. The export client used to seek with it alone and
answered a new request with an older completion of the same request id (its first test
failed so before the client read through this reader).
"""

from __future__ import annotations

import asyncio

from services.api.waiter import CompletionWaiter
from shared import codec
from shared.adapters.completions_reader import CompletionsReader
from shared.adapters.export_client import ExportClient
from shared.contracts.completions import ExportCompletion
from shared.settings import Settings
from tests.integration.kafka_tools import produce

_ORG = "ws-reader"


async def _publish(settings: Settings, *completions: ExportCompletion) -> None:
    await produce(
        settings,
        settings.topic_export_completions,
        [(_ORG.encode(), codec.dumps(c.model_dump(mode="json"))) for c in completions],
    )


def _answer(request_id: str, message: str) -> ExportCompletion:
    return ExportCompletion.failed(request_id, _ORG, 404, message)


def _earlier() -> list[ExportCompletion]:
    """Published in one batch with the one that matters: the embedded broker's
    ListOffsets(latest) answers about the last batch's base offset."""
    return [_answer(f"r-0{n}", "earlier") for n in range(5)]


async def test_the_export_client_never_reads_a_completion_published_before_it_started(
    fresh_settings: Settings,
) -> None:
    await _publish(fresh_settings, *_earlier(), _answer("r-1", "before"))
    async with ExportClient(fresh_settings) as client:
        await _publish(fresh_settings, _answer("r-1", "after"))
        completion = await client.wait("r-1", within_s=30)
    assert completion.error is not None
    assert completion.error.message == "after"


async def test_the_waiter_never_reads_a_completion_published_before_it_started(
    fresh_settings: Settings,
) -> None:
    await _publish(fresh_settings, *_earlier(), _answer("r-2", "before"))
    waiter = CompletionWaiter(fresh_settings, max_waiting=10)
    await waiter.start()
    try:
        async with waiter.waiting((_ORG, "r-2")) as future:
            await _publish(fresh_settings, _answer("r-2", "after"))
            completion = await asyncio.wait_for(future, 30)
    finally:
        await waiter.stop()
    assert completion.error is not None
    assert completion.error.message == "after"


async def test_the_reader_skips_records_that_are_not_completions(
    fresh_settings: Settings,
) -> None:
    reader = CompletionsReader(fresh_settings, poll_ms=200)
    await reader.start()
    try:
        await produce(
            fresh_settings,
            fresh_settings.topic_export_completions,
            [(_ORG.encode(), b"not json"), (_ORG.encode(), b'{"request_id": 1}')],
        )
        await _publish(fresh_settings, _answer("r-3", "readable"))
        read: list[ExportCompletion] = []
        async with asyncio.timeout(30):
            while not read:
                read += await reader.read()
    finally:
        await reader.stop()
    assert [c.request_id for c in read] == ["r-3"]
