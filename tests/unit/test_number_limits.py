"""Every event ingest accepts must be storable; numbers too large to store must be refused.

Found by the fault suite (``tests/integration/reliability/test_bad_input.py``): the
contract bounds tokens and money only from below, ingest accepts any JSON integer for a
count and any finite number for money, and state is stored with orjson, whose integers
stop at 64 bits. Money was held as integer pico-dollars, so one ``payg_limit`` or
``cost_usd`` of about 18.5 million USD (or a count near 2**64, or the sums of a few such
events) made the flush raise ``TypeError: Integer exceeds 64-bit range``: the worker
exited, restarted, re-read the same uncommitted event and exited again. Fixed by upper
bounds in validation and nano-dollars (docs/decisions.md, "Upper bounds").
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from services.ingest.decode import decode_batch
from services.ingest.validation import AcceptedRange, Rejected, validate_record
from services.ingest.workspace_writer import WorkspaceWriter
from shared.columnar.queries.engine import connect, export_file
from shared.columnar.tables import TableStore, read_dimensions, read_facts
from shared.contracts.events import MAX_REQUESTS, MAX_TOKENS, MAX_USD
from shared.contracts.requests import DataType
from shared.domain.facts import NANO

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
HEAD = {"org_id": "ws-1", "occurred_at": "2026-11-20T10:00:00Z"}
CALL = {"model": "m", "provider": "p"}
SOURCE = ("usage.events", 0)


#: (an event with the number at ``X``, where the contract puts it, its upper bound and type)
X = object()
BOUNDED = [
    pytest.param(
        {"type": "user_upserted", "user_id": "u1", "payg_limit": X},
        "user_upserted.payg_limit",
        MAX_USD,
        float,
        id="payg_limit",
    ),
    pytest.param(
        {"type": "payg_consumption", "user_id": "u1", "amount": X},
        "payg_consumption.amount",
        MAX_USD,
        float,
        id="payg_amount",
    ),
    pytest.param(
        {"type": "api_request", "api_key_id": "k1", **CALL, "usage": {"cost_usd": X}},
        "api_request.usage.cost_usd",
        MAX_USD,
        float,
        id="cost_usd",
    ),
    pytest.param(
        {"type": "message", "user_id": "u1", **CALL, "usage": {"prompt_tokens": X}},
        "message.usage.prompt_tokens",
        MAX_TOKENS,
        int,
        id="prompt_tokens_summed",
    ),
    pytest.param(
        {"type": "api_request", "api_key_id": "k1", **CALL, "requests": X},
        "api_request.requests",
        MAX_REQUESTS,
        int,
        id="requests_summed",
    ),
]


def _with(template: Any, number: int | float) -> Any:
    if template is X:
        return number
    if isinstance(template, dict):
        return {name: _with(value, number) for name, value in template.items()}
    return template


def _validate(number: int | float, fields: dict[str, Any], event_id: str) -> Any:
    event = {"event_id": event_id, **HEAD, **_with(fields, number)}
    return validate_record(orjson.dumps(event), AcceptedRange.at(NOW), max_bytes=1 << 20)


@pytest.mark.parametrize(("fields", "path", "bound", "kind"), BOUNDED)
def test_numbers_over_the_bound_are_refused_naming_field_and_bound(
    fields: dict[str, Any], path: str, bound: int, kind: type[float]
) -> None:
    """Just past the bound, and what once broke the flush (2e7 USD, 2**63 counts), is
    dead-lettered with the exact reason."""
    for number in (kind(bound + 1), kind(bound * 20), kind(2**63)):
        assert _validate(number, fields, "e1") == Rejected(
            "invalid_event", f"{path}: Input should be less than or equal to {bound}"
        ), number


@pytest.mark.parametrize(("fields", "path", "bound", "kind"), BOUNDED)
async def test_events_at_the_bound_are_accepted_made_durable_and_exported(
    fields: dict[str, Any], path: str, bound: int, kind: type[float], tmp_path: Path
) -> None:
    """Two such events of one user and day (their sums too must be computable): ingest's
    decoder accepts them, a writer commits them, they read back exactly, and every export
    type runs over them."""
    number = kind(bound)  # the largest accepted
    values = [orjson.dumps({"event_id": f"e{n}", **HEAD, **_with(fields, number)}) for n in (1, 2)]
    decoded = decode_batch(values, AcceptedRange.at(NOW), max_bytes=1 << 20)
    assert not decoded.rejected, decoded.rejected
    store = TableStore.local(str(tmp_path))
    writer = await WorkspaceWriter.open(store, "ws-1", [SOURCE])
    if decoded.fact_records:
        offsets = np.array(decoded.fact_records, dtype=np.int64)
        assert (await writer.add_facts(SOURCE, offsets, decoded.facts)).applied == 2
    versions = [(index, version) for index, _, version in decoded.dimensions]
    assert writer.add_dimensions(SOURCE, versions).applied == len(versions)
    await writer.commit({SOURCE: 2})

    facts = await read_facts(store, "ws-1", date(2026, 11, 20), date(2026, 11, 20))
    dimensions = await read_dimensions(store, "ws-1")
    assert facts.sort_by("event_id").equals(decoded.facts.sort_by("event_id"))
    for row in dimensions.to_pylist():
        assert orjson.loads(row["attributes"])["payg_limit"] == bound * NANO
    con = connect(facts, dimensions)
    for data_type in DataType:
        export = export_file(
            con,
            data_type,
            org_id="ws-1",
            group_by=None,
            start_ms=0,
            end_ms=2**62,
            period_start="2026-01-01",
            period_end="2026-12-31",
        )
        assert export.data.startswith(b"period_start,")
