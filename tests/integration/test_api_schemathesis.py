"""Schemathesis against the live API: generated requests for every documented operation,
each response checked against the committed OpenAPI document (status, content type,
body schema, headers) and for server errors.

The API and the exporter run on this test's event loop; schemathesis makes blocking
calls, so it runs in a worker thread. Deterministic (``derandomize``) and bounded.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Err

from services.exporter.app import run_exporter
from shared.settings import Settings
from tests.integration.api_tools import create_key, running_api

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "contracts" / "openapi.json"
EXAMPLES_PER_OPERATION = 8
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


def _check_every_operation(base_url: str, key: str) -> list[str]:
    """Run the generated cases; returns the labels of the operations tested."""
    schema = schemathesis.openapi.from_dict(json.loads(COMMITTED.read_text()))
    tested = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        operation = result.ok()

        @hypothesis_settings(
            max_examples=EXAMPLES_PER_OPERATION,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            case.call_and_validate(
                base_url=base_url, headers={"Authorization": f"Bearer {key}"}, checks=CHECKS
            )

        check()
        tested.append(operation.label)
    return tested


# Schemathesis's strategies draw from `random` (its own code, not ours): Hypothesis warns.
@pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning"
)
async def test_live_api_conforms_to_its_openapi_document(fresh_settings: Settings) -> None:
    settings = fresh_settings.model_copy(
        update={"api_rate_limit_per_min": 100_000, "api_timeout_s": 60.0}
    )
    key = await create_key(settings, "ws-schemathesis")
    stop = asyncio.Event()
    exporter = asyncio.create_task(run_exporter(settings, stop=stop))
    try:
        async with running_api(settings) as serving:
            tested = await asyncio.to_thread(_check_every_operation, serving.api_url, key)
    finally:
        stop.set()
        await exporter
    assert "POST /export/users" in tested
    assert "GET /export/requests/{request_id}" in tested
    assert "POST /schedules" in tested
    assert "POST /schedules/{schedule_id}/pause" in tested
    assert len(tested) == 25  # 19 export and status operations, 6 schedule operations
