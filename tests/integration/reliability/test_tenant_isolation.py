"""Scenario 7: tenant isolation. Two workspaces share entity ids and even event ids; each
carries a secret marker in every text it owns. Hostile ids (``/``, ``..``, control and
look-alike unicode characters) arrive as workspace and entity ids of events and as
workspace and request ids of export requests.

* every export of one workspace equals the oracle's and holds no trace of the other;
* every event and request with a hostile id is refused (dead letter, or a 400 completion
  that does not echo the id), and no hostile id ever reaches an object key: both buckets
  are listed and every key is checked against the layout.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import orjson

from shared.adapters.export_client import export_request
from shared.clock import system_clock
from shared.contracts.ids import is_valid_id
from tests.integration.conftest import FreshSettingsFactory
from tests.integration.kafka_tools import read_topic
from tests.integration.reliability.badinput import HOSTILE_IDS
from tests.integration.reliability.conftest import FiguresRecorder
from tests.integration.reliability.exports import (
    ExportTally,
    bucket_keys,
    compare,
    expected_of,
    exporter_in_process,
)
from tests.integration.reliability.streams import produce_paced
from tests.integration.reliability.tenants import (
    AGGREGATE_KEY,
    ALPHA,
    BETA,
    EXPORT_KEY,
    hostile_events,
    key_violations,
    workspace_events,
)
from tests.integration.test_ingest import ingest_until_committed
from tests.reference import build_log

TYPES_AND_GROUPS = [
    ("users", None), ("users", "model"), ("assistants", None), ("assistants", "model"),
    ("api_keys", None), ("api_keys", "model"), ("projects", None), ("models", None),
    ("models", "source"), ("models", "deployment"),
]  # fmt: skip


async def test_no_export_or_key_crosses_a_workspace_boundary(
    make_fresh_settings: FreshSettingsFactory, figures: FiguresRecorder
) -> None:
    row = figures.row("7", "short")
    settings = await make_fresh_settings()
    now = system_clock()  # read once: every date of the scenario derives from it
    alpha_marker, beta_marker = f"ALPHA{uuid.uuid4().hex[:6]}", f"BETA{uuid.uuid4().hex[:6]}"
    alpha, beta = (
        workspace_events(ALPHA, alpha_marker, now),
        workspace_events(BETA, beta_marker, now),
    )
    hostile = hostile_events(now)
    records = [(ALPHA.encode(), v) for v in alpha] + [(BETA.encode(), v) for v in beta] + hostile
    row.events = len(records)
    ends = await produce_paced(settings, settings.topic_events, records)
    await ingest_until_committed(settings, ends)
    log = build_log([value for _, value in records], valid_at=now)
    assert log.invalid == len(hostile)  # the oracle refuses every hostile id too

    # Every hostile event was dead-lettered for its id.
    letters = await read_topic(settings, settings.topic_events_dlq, expected=len(hostile))
    assert sorted(letter.value for letter in letters) == sorted(value for _, value in hostile)
    for letter in letters:
        assert dict(letter.headers)["error.reason"] == b"invalid_event"

    start = (now - timedelta(days=10)).date().isoformat()
    end = (now - timedelta(days=1)).date().isoformat()
    tally = ExportTally()
    leaked: list[str] = []
    markers = {ALPHA: (alpha_marker, beta_marker), BETA: (beta_marker, alpha_marker)}
    async with exporter_in_process(settings) as client:
        for org in (ALPHA, BETA):
            own, foreign = markers[org]
            for data_type, group_by in TYPES_AND_GROUPS:
                message = export_request(org, data_type, start, end, group_by=group_by)
                completion = await client.request(message)
                expected = expected_of(log, message, now)
                body = await compare(tally, message, completion, expected, log=log)
                assert body is not None, completion.error
                text = body.decode()
                assert own in text  # names, models: every export shows its own texts
                if foreign in text:
                    leaked.append(f"{org}/{data_type}/{group_by}: contains {foreign}")
                assert completion.data is not None
                assert completion.data.filePath.split("/")[1] == org
        # Requests with hostile workspace ids: a 400 that does not echo them.
        refused = 0
        for hostile_id in [*HOSTILE_IDS, f"{ALPHA}/../{BETA}"]:
            completion = await client.request(export_request(hostile_id, "users", start, end))
            assert completion.error is not None
            assert completion.error.status == 400
            assert completion.org_id is None
            refused += 1
        # Requests with hostile request ids: not answerable at all, dead-lettered.
        for hostile_id in HOSTILE_IDS:
            message = export_request(ALPHA, "users", start, end) | {"request_id": hostile_id}
            await client.send(message)
        request_letters = await read_topic(
            settings, settings.topic_export_requests_dlq, expected=len(HOSTILE_IDS), timeout=60
        )
    dead_ids = sorted(orjson.loads(letter.value)["request_id"] for letter in request_letters)
    assert dead_ids == sorted(HOSTILE_IDS)
    assert {dict(r.headers)["error.reason"] for r in request_letters} == {b"invalid_request_id"}

    orgs = {ALPHA, BETA}
    aggregates = await bucket_keys(settings, settings.aggregates_bucket)
    exports = await bucket_keys(settings, settings.exports_bucket)
    leaked += key_violations(aggregates, AGGREGATE_KEY, orgs)
    leaked += key_violations(exports, EXPORT_KEY, orgs)
    row.faults = len(hostile) + refused + len(HOSTILE_IDS)
    row.fault_kinds = "hostile ids in events and requests"
    row.exports, row.lost, row.doubled, row.leaked = (
        tally.exports, tally.lost, tally.doubled, len(leaked)
    )  # fmt: skip
    row.details |= {"aggregate_keys": len(aggregates), "export_keys": len(exports)}
    assert not leaked, leaked[:10]
    tally.assert_exact()
    assert all(is_valid_id(key.split("/")[2]) for key in aggregates)
