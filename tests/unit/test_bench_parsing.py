"""Pure parts of the ingest benchmark: log and marks parsing, the peers' counters, the
profile summary, and how runs become figures and verdicts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.consumers import (
    BARE,
    EXPORTER_LOGGER,
    FAUST,
    QUIX,
    SERVICE,
    ConsumerRun,
    assigned_at,
)
from bench.export_bench import FIRST
from bench.export_bench import verdicts as export_verdicts
from bench.ingest_bench import ONE_BIG, SEVERAL, IngestConfig, ratios, summarise, verdicts
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


def test_the_exporter_joined_at_its_own_workers_assigned_line() -> None:
    lines = [
        '{"ts":"2026-11-22T19:56:59.638Z","level":"INFO","logger":"services.ingest.worker",'
        '"msg":"assigned [(\'usage.events\', 0)]"}',
        '{"ts":"2026-11-22T19:57:01.250Z","level":"INFO","logger":"services.exporter.worker",'
        '"msg":"assigned [(\'usage.export-requests\', 0)]"}',
    ]
    expected = datetime(2026, 11, 22, 19, 57, 1, 250000, tzinfo=UTC).timestamp()
    assert assigned_at("\n".join(lines), EXPORTER_LOGGER) == expected
    assert assigned_at(lines[0], EXPORTER_LOGGER) is None


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
    found = {item["target"]: item for item in verdicts(consumers, versus_faust=True)}
    assert found["ingest throughput vs faust-streaming"]["value"] == pytest.approx(30.0)
    assert found["ingest throughput vs faust-streaming"]["passed"] is True
    assert found["ingest throughput vs bare aiokafka fold"]["value"] == pytest.approx(0.5)
    assert found["ingest throughput vs bare aiokafka fold"]["passed"] is True
    assert found["ingest peak RSS"]["value"] == 310.0
    assert found["ingest peak RSS"]["passed"] is False
    assert len(found) == 3  # Quix is measured, without a target of its own
    second = {item["target"] for item in verdicts(consumers, versus_faust=False)}
    assert second == {"ingest throughput vs bare aiokafka fold", "ingest peak RSS"}
    assert ratios(consumers) == {BARE: pytest.approx(0.5), FAUST: pytest.approx(30.0), QUIX: None}


def test_each_ingest_workload_has_the_asked_size() -> None:
    now = datetime(2026, 11, 20, tzinfo=UTC)
    several, big = IngestConfig(events=1_000, orgs=4, big_users=300).workloads(now).values()
    assert (several.orgs, several.events, several.users) == (4, 1_000, 40)
    assert (big.orgs, big.events, big.users, big.agents, big.org_prefix) == (
        1, 1_000, 300, 1_000, "big",
    )  # fmt: skip
    assert list(IngestConfig(big_users=0).workloads(now)) == [SEVERAL]
    assert list(IngestConfig().workloads(now)) == [SEVERAL, ONE_BIG]


def _export(name: str, p50: float, p95: float, **more: object) -> dict[str, object]:
    return {"name": name, "p50_s": p50, "p95_s": p95, **more}


def test_export_verdicts_are_issue_12s() -> None:
    types = ("users", "assistants", "api_keys", "projects", "models")
    exports = [_export(f"{kind} 12 months", 0.8, 1.2) for kind in types]
    exports[3]["p95_s"] = 1.6
    exports += [
        _export(FIRST, 1.4, 1.4),
        _export("users 12 months, 1,000-user workspace", 0.1, 9.0, users=1_000),
        _export("users 12 months, 100,000-user workspace", 2.0, 3.5, users=100_000),
    ]
    measured = {"exports": exports, "exporter_peak_rss_mb": 290.0, "olap_peer": {"p50_s": 2.0}}
    found = {item["target"]: item for item in export_verdicts(measured)}
    assert {name: item["passed"] for name, item in found.items()} == {
        "12-month users export p50": True,
        "first 12-month users export after ingest": True,
        "12-month users export vs the OLAP peer (p50 / p50)": True,
        "12-month export p95, every type": False,
        "100,000-user workspace's users export": False,
        "exporter peak RSS": True,
    }
    assert found["12-month users export vs the OLAP peer (p50 / p50)"]["value"] == 0.4
    assert found["12-month export p95, every type"]["value"] == 1.6
    assert found["100,000-user workspace's users export"]["value"] == 3.5
    assert json.dumps(found)  # serialisable as written to results.json
    found = {item["target"]: item for item in export_verdicts({"exports": exports[:1]})}
    assert found["12-month users export vs the OLAP peer (p50 / p50)"]["passed"] is None
    assert found["first 12-month users export after ingest"]["passed"] is None
    assert found["12-month export p95, every type"]["passed"] is None
