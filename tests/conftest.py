"""Set-up shared by every test tier.

Tests are hermetic: ``USAGE_*`` variables from the developer's shell (a sourced
``usage.env``, say) would silently change Settings defaults in unit tests and point
integration tests at another broker, so they are removed for the whole session before
any test module is imported. ``USAGE_TEST_*`` variables configure the test run itself
(e.g. ``USAGE_TEST_INFRA``) and are kept. Only the metrics and API ports are then set, to 0.

"Now" has one source: ``tests/clock.py`` (the session's start, read once through
``shared.clock.system_clock``); the ``now`` and ``clock`` fixtures hand it out.
"""

from __future__ import annotations

import os
from datetime import datetime

import pytest

from shared.clock import Clock, fixed_clock
from tests import clock as session_clock

for _name in [
    name for name in os.environ if name.startswith("USAGE_") and not name.startswith("USAGE_TEST_")
]:
    del os.environ[_name]

# Services started by tests serve /metrics and /health on free ports: several run at
# once, and a developer's own services may hold the default ports.
os.environ["USAGE_INGEST_METRICS_PORT"] = "0"
os.environ["USAGE_EXPORTER_METRICS_PORT"] = "0"
os.environ["USAGE_API_METRICS_PORT"] = "0"
os.environ["USAGE_SCHEDULER_METRICS_PORT"] = "0"
os.environ["USAGE_COMPACTOR_METRICS_PORT"] = "0"
os.environ["USAGE_API_PORT"] = "0"
# Unset S3 keys mean AWS's default credential chain: it must never ask the link-local
# instance-metadata address (off loopback) from a test.
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


@pytest.fixture
def now() -> datetime:
    """The session's reference instant (``tests.clock.NOW``): every test's "now"."""
    return session_clock.NOW


@pytest.fixture
def clock() -> Clock:
    """A clock pinned at :func:`now`, to inject into the services under test."""
    return fixed_clock(session_clock.NOW)
