"""Metrics and health endpoints on a real loopback socket; JSON log lines; metric sets."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from shared.adapters.logging import setup_logging
from shared.contracts.completions import CompletionData, ExportCompletion
from shared.errors import StoreUnavailable
from shared.observability import (
    ExporterMetrics,
    IngestMetrics,
    ObservabilityServer,
    broker_check,
    flag_check,
    new_registry,
    store_check,
    tcp_reachable,
)
from tests.unit.memory_store import MemoryStore


class Switch:
    """A readiness check whose outcome the test flips."""

    def __init__(self) -> None:
        self.healthy = True

    async def __call__(self) -> None:
        if not self.healthy:
            raise ConnectionError("broker at 127.0.0.1:1 refused the connection")


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_endpoint_serves_its_own_registry(http: aiohttp.ClientSession) -> None:
    registry = new_registry("ingest")
    metrics = IngestMetrics(registry)
    metrics.events_consumed.inc(5)
    metrics.dead_lettered("invalid_json")
    metrics.set_lag("usage.events", 3, 42)
    metrics.observe_flush(0.2, facts=100, states=4, conflicts=1)
    async with (
        ObservabilityServer(registry, port=0) as server,
        http.get(f"{server.url}/metrics") as response,
    ):
        assert response.status == 200
        assert response.content_type == "text/plain"
        text = await response.text()
    found = samples(text)
    assert found["usage_ingest_events_consumed_total", ()] == 5
    assert found["usage_ingest_events_dead_lettered_total", (("reason", "invalid_json"),)] == 1
    assert found["usage_ingest_consumer_lag", (("partition", "3"), ("topic", "usage.events"))] == 42
    assert found["usage_ingest_flush_seconds_count", ()] == 1
    assert found["usage_ingest_flush_conflicts_total", ()] == 1
    assert (
        "usage_build_info",
        (("service", "ingest"), ("version", metrics_version(found))),
    ) in found
    assert any(name.startswith("process_") for name, _ in found)


def metrics_version(found: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> str:
    (labels,) = [labels for name, labels in found if name == "usage_build_info"]
    return dict(labels)["version"]


async def test_two_servers_in_one_process_do_not_share_metrics(
    http: aiohttp.ClientSession,
) -> None:
    first, second = new_registry("ingest"), new_registry("exporter")
    Counter("only_in_first", "a counter", registry=first).inc()
    async with (
        ObservabilityServer(first, port=0) as one,
        ObservabilityServer(second, port=0) as two,
    ):
        assert one.port != two.port
        async with http.get(f"{two.url}/metrics") as response:
            assert "only_in_first" not in await response.text()
        async with http.get(f"{one.url}/metrics") as response:
            assert "only_in_first_total 1.0" in await response.text()


async def test_openmetrics_is_served_when_asked_for(http: aiohttp.ClientSession) -> None:
    async with ObservabilityServer(new_registry("ingest"), port=0) as server:
        headers = {"Accept": "application/openmetrics-text; version=1.0.0"}
        async with http.get(f"{server.url}/metrics", headers=headers) as response:
            assert response.content_type == "application/openmetrics-text"
            assert (await response.text()).endswith("# EOF\n")


async def test_readiness_flips_to_503_when_a_check_fails(http: aiohttp.ClientSession) -> None:
    broker, store = Switch(), Switch()
    checks = {"broker": broker, "store": store}
    async with ObservabilityServer(CollectorRegistry(), port=0, checks=checks) as server:
        async with http.get(f"{server.url}/health/ready") as response:
            assert response.status == 200
            assert await response.json() == {
                "status": "ready",
                "checks": {"broker": "ok", "store": "ok"},
            }
        broker.healthy = False
        async with http.get(f"{server.url}/health/ready") as response:
            assert response.status == 503
            body = await response.json()
        assert body["status"] == "not ready"
        assert body["checks"] == {"broker": "failed", "store": "ok"}
        assert "ConnectionError: broker at 127.0.0.1:1 refused" in body["failed"]["broker"]
        async with http.get(f"{server.url}/health/live") as response:
            assert response.status == 200  # liveness never depends on the broker
        broker.healthy = True
        async with http.get(f"{server.url}/health/ready") as response:
            assert response.status == 200


async def test_a_hanging_check_fails_by_timeout_instead_of_hanging() -> None:
    async def hangs() -> None:
        await asyncio.Event().wait()

    server = ObservabilityServer(
        CollectorRegistry(), port=0, checks={"stuck": hangs}, check_timeout_s=0.05
    )
    assert await server.run_checks() == {"stuck": "no answer within 0.05 s"}


async def test_stopped_server_releases_its_port(http: aiohttp.ClientSession) -> None:
    server = ObservabilityServer(CollectorRegistry(), port=0)
    await server.start()
    url = server.url
    await server.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        async with http.get(f"{url}/health/live"):
            pass
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.port


async def test_tcp_check_passes_on_a_listening_port_and_names_the_failure() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        await tcp_reachable(f"127.0.0.1:1, 127.0.0.1:{port}")
        await broker_check(f"127.0.0.1:{port}")()
    with pytest.raises(ConnectionError, match=f"127.0.0.1:{port}"):
        await tcp_reachable(f"127.0.0.1:{port}", timeout_s=1.0)


async def test_store_and_flag_checks() -> None:
    store = MemoryStore()
    await store_check(store)()
    assert store.bucket_checks == 1
    store.fail = StoreUnavailable
    with pytest.raises(StoreUnavailable):
        await store_check(store)()
    draining = False
    check = flag_check(lambda: not draining, "draining: SIGTERM received")
    await check()
    draining = True
    with pytest.raises(RuntimeError, match="draining"):
        await check()


def test_exporter_metrics_from_completions_keep_labels_bounded() -> None:
    registry = CollectorRegistry()
    metrics = ExporterMetrics(registry)
    data = CompletionData(
        filePath="f", downloadUrl="u", expiresAt="e", dataType="users", recordCount=12,
        bytes=3456, sha256="s", dateRange={},
    )  # fmt: skip
    metrics.observe_completion(ExportCompletion.ok("r1", "ws", data), 1.5)
    metrics.observe_completion(ExportCompletion.failed("r2", "ws", 404, "none"), 0.1,
                               data_type="agents")  # fmt: skip
    metrics.observe_completion(ExportCompletion.failed("r3", "ws", 400, "bad"), 0.1,
                               data_type="'; drop table")  # fmt: skip

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("usage_exporter_exports_total", data_type="users", status="200") == 1
    assert value("usage_exporter_exports_total", data_type="assistants", status="404") == 1
    assert value("usage_exporter_exports_total", data_type="invalid", status="400") == 1
    assert value("usage_exporter_bytes_written_total", data_type="users") == 3456
    assert value("usage_exporter_rows_written_total", data_type="users") == 12
    assert value("usage_exporter_export_duration_seconds_count", data_type="users") == 1


def test_revoked_partitions_stop_reporting_lag() -> None:
    registry = CollectorRegistry()
    metrics = IngestMetrics(registry)
    metrics.set_lag("usage.events", 0, 10)
    metrics.set_lag("usage.events", 1, -3)
    assert (
        registry.get_sample_value(
            "usage_ingest_consumer_lag", {"topic": "usage.events", "partition": "1"}
        )
        == 0
    )
    metrics.forget_partition("usage.events", 0)
    metrics.forget_partition("usage.events", 7)  # never reported: no error
    assert (
        registry.get_sample_value(
            "usage_ingest_consumer_lag", {"topic": "usage.events", "partition": "0"}
        )
        is None
    )
    metrics.set_cache(entries=3, facts=300)
    assert registry.get_sample_value("usage_ingest_cache_facts") == 300


# ---- logging ------------------------------------------------------------------------------
@pytest.fixture
def restore_root_logger() -> Any:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.mark.usefixtures("restore_root_logger")
def test_json_log_lines_parse_and_carry_extras() -> None:
    stream = io.StringIO()  # not a terminal: JSON by default
    setup_logging("DEBUG", stream=stream)
    log = logging.getLogger("usage.test")
    log.info("export %s done", "r-1", extra={"request_id": "r-1", "org_id": "ws-acme"})
    log.debug("odd", extra={"level": "mine", "thing": object()})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["msg"] for line in lines] == ["export r-1 done", "odd", "failed"]
    first = lines[0]
    assert first["level"] == "INFO"
    assert first["logger"] == "usage.test"
    assert (first["request_id"], first["org_id"]) == ("r-1", "ws-acme")
    assert first["ts"].endswith("Z")
    assert lines[1]["level_"] == "mine"
    assert lines[1]["thing"].startswith("<object object")
    assert "ValueError: boom" in lines[2]["exc"]


@pytest.mark.usefixtures("restore_root_logger")
def test_plain_logs_for_people_and_one_handler_after_repeated_setup() -> None:
    stream = io.StringIO()
    setup_logging("INFO", json=False, stream=stream)
    setup_logging("INFO", json=False, stream=stream)
    logging.getLogger("usage.test").info("hello", extra={"request_id": "r-2"})
    (line,) = stream.getvalue().splitlines()
    assert line.endswith("INFO    usage.test hello request_id=r-2")
    assert logging.getLogger("aiokafka").level == logging.WARNING
