"""The text log format cannot be forged: control characters in logged values are
escaped, and traceback lines are indented, so every line at the margin is a record."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

import pytest

from shared.adapters.logging import setup_logging

FORGED = "\n2026-12-03 05:00:00,000 INFO    services.api forged: key accepted"
RECORD_START = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} ")


@pytest.fixture
def text_log() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    installed = setup_logging("INFO", json=False, stream=stream)
    yield stream
    root.removeHandler(installed)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


def records(stream: io.StringIO) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if RECORD_START.match(line)]


def test_a_value_with_a_newline_stays_on_its_line(text_log: io.StringIO) -> None:
    log = logging.getLogger("usage.test")
    log.info("workspace %s", f"ws-1{FORGED}", extra={"request_id": f"r-1{FORGED}\r\x1b[2K"})
    lines = text_log.getvalue().splitlines()
    assert len(lines) == 1
    assert "workspace ws-1\\n2026-12-03" in lines[0]
    assert "request_id=r-1\\n2026-12-03" in lines[0]
    assert "\\r\\x1b[2K" in lines[0]


def test_a_traceback_cannot_start_a_record(text_log: io.StringIO) -> None:
    try:
        raise ValueError(f"bad value{FORGED}")
    except ValueError:
        logging.getLogger("usage.test").exception("failed for %s", "ws-1")
    lines = text_log.getvalue().splitlines()
    assert len(records(text_log)) == 1
    assert lines[0].endswith("ERROR   usage.test failed for ws-1")
    assert all(line.startswith("  ") for line in lines[1:])
    assert any("ValueError: bad value" in line for line in lines[1:])


def test_plain_text_is_unchanged(text_log: io.StringIO) -> None:
    logging.getLogger("usage.test").info("export %s: 12 rows, café", "r-9")
    (line,) = text_log.getvalue().splitlines()
    assert line.endswith("INFO    usage.test export r-9: 12 rows, café")
