"""Fixtures of the fault suite. The broker and store are the integration session's
(``stack``, ``make_fresh_settings`` from ``tests/integration/conftest.py``); what is added
here is the figures recorder and a fault proxy in front of the store."""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from pathlib import Path

import hypothesis
import pytest

from tests.integration.conftest import InfraStack
from tests.integration.reliability.figures import ScenarioFigures, merge_result, results_path
from tests.integration.reliability.proxy import FaultProxy
from tests.integration.reliability.seeds import replay_hint, suite_seed

SUITE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Seed the suite's Hypothesis scenarios with the run's seed: random examples each
    run (``derandomize`` would repeat the same ones), replayable with the seed."""
    for item in items:
        test = getattr(item, "obj", None)
        if (
            test is not None
            and item.path.is_relative_to(SUITE)
            and getattr(test, "is_hypothesis_test", False)
        ):
            hypothesis.seed(suite_seed())(test)


class FiguresRecorder:
    """``figures.row("1", "short")`` opens the row a test fills in."""

    def __init__(self) -> None:
        self.rows: list[ScenarioFigures] = []

    def row(self, scenario: str, size: str) -> ScenarioFigures:
        figures = ScenarioFigures(scenario=scenario, size=size)
        self.rows.append(figures)
        return figures


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_CALL_OUTCOME] = report.outcome
    if report.failed and item.path.is_relative_to(SUITE):
        report.sections.append(("fault suite seed", replay_hint()))
    return report


_CALL_OUTCOME = pytest.StashKey[str]()


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[FiguresRecorder]:
    recorder = FiguresRecorder()
    yield recorder
    outcome = request.node.stash.get(_CALL_OUTCOME, "error")
    path = results_path()
    for row in recorder.rows:
        row.seconds = round(time.monotonic() - row.started, 1)
        if not row.result.startswith("FAIL"):  # a fixture may have failed it already
            row.result = "pass" if outcome == "passed" else f"FAIL ({outcome})"
        row.details.setdefault("suite_seed", suite_seed())
        if path is not None:
            merge_result(path, row)


@pytest.fixture
def store_proxy(stack: InfraStack) -> Iterator[FaultProxy]:
    """A fault proxy in front of the session's object store (the store itself is never
    stopped: cutting the proxy is the outage)."""
    with FaultProxy.in_front_of(stack.settings.s3_endpoint) as proxy:
        yield proxy
