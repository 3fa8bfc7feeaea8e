"""Both services serve /metrics and /health while they run, and every export leaves an
audit line."""

from __future__ import annotations

import asyncio
import logging
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
import pytest

from services.exporter.app import run_exporter
from services.ingest.app import run_ingest
from shared.adapters.export_client import ExportClient, export_request
from shared.settings import Settings
from shared.simulation import SimConfig, simulate
from tests.integration.kafka_tools import produce, wait_until_committed


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except urllib.error.URLError as error:
        return 0, str(error.reason)  # nothing listening


def _sample(metrics: str, name: str) -> float:
    """The value of an unlabelled sample (0 when absent)."""
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


async def test_metrics_health_and_audit_line(
    fresh_settings: Settings, caplog: pytest.LogCaptureFixture, now: datetime
) -> None:
    settings = fresh_settings
    records = list(simulate(SimConfig(seed=8, orgs=1, events=600, invalid_rate=0.05, end=now)))
    # Half a year up to today, in Berlin: well inside the 12 months, and holding about
    # half of the simulated year's events.
    to_day = now.astimezone(ZoneInfo("Europe/Berlin")).date()
    from_day = (to_day - timedelta(days=182)).isoformat()
    invalid = sum(record.kind == "invalid" for record in records)
    ends = await produce(settings, settings.topic_events, ((r.key, r.value) for r in records))
    urls: dict[str, str] = {}
    stop = asyncio.Event()
    ingest = asyncio.create_task(
        run_ingest(settings, stop=stop, on_serving=lambda url: urls.update(ingest=url))
    )
    exporter = asyncio.create_task(
        run_exporter(settings, stop=stop, on_serving=lambda url: urls.update(exporter=url))
    )
    try:
        await wait_until_committed(settings, settings.ingest_group, settings.topic_events, ends)
        status, metrics = await asyncio.to_thread(_get, urls["ingest"] + "/metrics")
        assert status == 200
        assert _sample(metrics, "usage_ingest_events_consumed_total") == len(records)
        assert _sample(metrics, "usage_ingest_events_applied_total") == 600
        assert _sample(metrics, "usage_ingest_events_duplicated_total") == sum(
            record.kind == "duplicate" for record in records
        )
        assert "usage_ingest_events_dead_lettered_total{reason=" in metrics
        assert "usage_ingest_consumer_lag{" in metrics
        assert _sample(metrics, "usage_ingest_flush_seconds_count") >= 1
        assert invalid > 0
        for url in urls.values():
            assert (await asyncio.to_thread(_get, url + "/health/live"))[0] == 200
            ready, body = await asyncio.to_thread(_get, url + "/health/ready")
            assert ready == 200, body

        caplog.set_level(logging.INFO, logger="usage_export.audit")
        async with ExportClient(settings) as client:
            completion = await client.request(
                export_request(
                    "ws-0001",
                    "users",
                    from_day,
                    to_day.isoformat(),
                    timezone="Europe/Berlin",
                    requested_by="admin-7",
                ),
                within_s=60,
            )
        assert completion.success
        status, metrics = await asyncio.to_thread(_get, urls["exporter"] + "/metrics")
        assert 'usage_exporter_exports_total{data_type="users",status="200"} 1.0' in metrics
        audits = [r for r in caplog.records if r.name == "usage_export.audit"]
        assert len(audits) == 1
        line = audits[0].__dict__
        assert line["request_id"] == completion.request_id
        assert line["requested_by"] == "admin-7"
        assert line["status"] == 200
        assert line["file"] == completion.data.filePath  # type: ignore[union-attr]
        assert line["window"]["from"] == {"date": from_day, "timezone": "Europe/Berlin"}
        orjson.dumps(line["date_range"])  # JSON-serialisable for the log line
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(ingest, exporter), 60)
    for url in urls.values():
        status, _ = await asyncio.to_thread(_get, url + "/health/live")
        assert status == 0, "the health server stops with its service"
