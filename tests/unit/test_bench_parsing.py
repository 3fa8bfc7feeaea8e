"""Pure parts of the ingest benchmark: log and marks parsing, the peers' counters, the
profile summary, and how runs become figures and verdicts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.consumers import BARE, FAUST, QUIX, SERVICE, ConsumerRun, assigned_at
from bench.export_bench import verdicts as export_verdicts
from bench.ingest_bench import summarise, verdicts
from bench.peers.common import Marks, add, counter_key, read_marks
from bench.profile import OTHER, categorise, parse_collapsed, top_functions

MESSAGE = {
    "type": "message",
    "org_id": "ws-1",
    "occurred_at": "2026-03-01T23:30:00-02:00",  # 01:30 UTC on 2 March
    "user_id": "u1",
    "model": "m1",
    "requests": 2,
    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "cache_creation_tokens": 1},
}


def test_the_service_start_is_its_first_assigned_log_line() -> None:
    lines = [
        '{"ts":"2026-11-22T19:56:59.100Z","level":"INFO","logger":"x","msg":"assigned"}',
        "not json at all",
        '{"ts":"2026-11-22T19:56:59.638Z","level":"INFO","logger":"services.ingest.worker",'
        '"msg":"assigned [(\'usage.events\', 0)]"}',
    ]
    expected = datetime(2026, 11, 22, 19, 56, 59, 638000, tzinfo=UTC).timestamp()
    assert assigned_at("\n".join(lines)) == expected
    assert assigned_at("nothing here\n") is None


def test_text_log_lines_are_read_as_local_time() -> None:
    line = "2026-11-22 19:44:36,123 INFO services.ingest.worker assigned [('t', 1)]"
    assert assigned_at(line) == datetime(2026, 11, 22, 19, 44, 36, 123000).timestamp()


def test_peers_count_messages_per_utc_day_user_and_model() -> None:
    assert counter_key(MESSAGE) == "ws-1|2026-03-02|u1|m1"
    assert counter_key({"type": "api_request"}) is None
    once = add(None, MESSAGE)
    assert once == [1, 2, 10, 5, 0, 1]
    assert add(once, MESSAGE) == [2, 4, 20, 10, 0, 2]


def test_marks_record_first_record_done_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "peer.marks"
    marks = Marks(path, expected=3)
    marks.seen(2)
    marks.folded(2)
    assert "done_at" not in read_marks(path)
    marks.folded(1)
    marks.close(keys=7)
    found = read_marks(path)
    assert found["first_record_at"] <= found["done_at"]
    assert (found["count"], found["folded"], found["keys"]) == (2, 3, 7)
    assert read_marks(tmp_path / "missing") == {}


def test_profile_samples_go_to_the_first_matching_category() -> None:
    text = "\n".join(
        [
            "run (services/ingest/worker.py:1);put (shared/adapters/s3.py:2);"
            "_make (botocore/x.py:3) 6",
            "run (services/ingest/worker.py:1);validate_record (validation.py:9) 3",
            "_run_once (asyncio/base_events.py:1) 1",
            "garbage line",
        ]
    )
    stacks = parse_collapsed(text)
    assert len(stacks) == 3
    shares = categorise(stacks)
    assert shares["S3 requests (aioboto3/botocore/aiohttp)"] == pytest.approx(0.6)
    assert shares["validation (orjson + pydantic)"] == pytest.approx(0.3)
    assert shares[OTHER] == pytest.approx(0.1)
    assert top_functions(stacks, 1) == [["_make (botocore/x.py:3)", 0.6]]
    inclusive = dict(map(tuple, top_functions(stacks, 5, inclusive=True)))
    assert inclusive["run (services/ingest/worker.py:1)"] == pytest.approx(0.9)


def _run(consumer: str, seconds: float | None, rss: float = 100.0) -> ConsumerRun:
    error = None if seconds is not None else "it broke"
    return ConsumerRun(consumer, 1000, wall_s=seconds, consume_s=seconds, peak_rss_mb=rss,
                       error=error)  # fmt: skip


def test_runs_become_median_min_max_and_failures_stay_visible() -> None:
    section = summarise([_run(SERVICE, 1.0), _run(SERVICE, 2.0), _run(SERVICE, None)])
    assert section["events_per_s"]["median"] == pytest.approx(750.0)
    assert section["events_per_s"]["min"] == pytest.approx(500.0)
    assert section["errors"] == ["it broke"]
    assert "events_per_s" not in summarise([_run(FAUST, None)])


def test_ingest_verdicts_compare_medians_and_the_worst_rss() -> None:
    consumers = {
        SERVICE: summarise([_run(SERVICE, 1.0, 250.0), _run(SERVICE, 1.0, 310.0)]),
        BARE: summarise([_run(BARE, 0.5)]),
        FAUST: summarise([_run(FAUST, 30.0)]),
        QUIX: summarise([_run(QUIX, None)]),
    }
    found = {item["target"]: item for item in verdicts(consumers)}
    assert found["ingest throughput vs faust-streaming"]["value"] == pytest.approx(30.0)
    assert found["ingest throughput vs faust-streaming"]["passed"] is True
    assert found["ingest throughput vs bare aiokafka fold"]["value"] == pytest.approx(0.5)
    assert found["ingest throughput vs Quix Streams"]["passed"] is None
    assert found["ingest peak RSS"]["value"] == 310.0
    assert found["ingest peak RSS"]["passed"] is False


def test_export_verdicts_use_the_users_p50_and_the_worst_p95() -> None:
    types = ("users", "assistants", "api_keys", "projects", "models")
    exports = [{"name": f"{kind} 12 months", "p50_s": 1.0, "p95_s": 2.0} for kind in types]
    exports[3]["p95_s"] = 6.0
    found = export_verdicts({"exports": exports, "exporter_peak_rss_mb": 350.0})
    assert [item["passed"] for item in found] == [True, False, True, None, None]
    assert found[1]["value"] == 6.0
    cold = {"name": "users 12 months, cold (rollups deleted)", "p50_s": 4.0, "p95_s": 4.5}
    found = export_verdicts({"exports": [*exports, cold], "exporter_peak_rss_mb": 350.0})
    assert [item["passed"] for item in found] == [True, False, True, False, True]
    assert found[3]["value"] == 4.0
    assert json.dumps(found)  # serialisable as written to results.json
