"""No producer of the project sets a record timestamp (issue 11, item 7).

Retention deletes a record by its timestamp. Where the broker does not apply the
topics' ``message.timestamp.type=LogAppendTime`` (the embedded Tansu; see
tests/integration/test_topic_time.py), a record's timestamp is what its producer sent;
ours send none, so it is the produce time and retention counts from when an event was
produced, never from its ``occurred_at``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCING_CODE = ("shared", "services", "bench")
SEND_METHODS = {"send", "send_and_wait", "append", "send_batch"}


def _sends_with_timestamps(source: str) -> list[int]:
    """Lines of producer calls that pass ``timestamp_ms`` (by keyword or a ** mapping)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in SEND_METHODS:
            continue
        if any(keyword.arg in ("timestamp_ms", None) for keyword in node.keywords):
            lines.append(node.lineno)
    return lines


def test_the_scan_finds_a_send_with_a_timestamp() -> None:
    source = (
        "async def f(p):\n"
        "    await p.send('t', b'v')\n"
        "    await p.send_and_wait('t', b'v', timestamp_ms=1)\n"
        "    await p.send('t', **options)\n"
    )
    assert _sends_with_timestamps(source) == [3, 4]


def test_no_producer_of_the_project_sets_a_record_timestamp() -> None:
    files = [path for part in PRODUCING_CODE for path in sorted((ROOT / part).rglob("*.py"))]
    assert len(files) > 50  # the scan sees the code, not an empty directory
    offending = {
        str(path.relative_to(ROOT)): lines
        for path in files
        if (lines := _sends_with_timestamps(path.read_text(encoding="utf-8")))
    }
    assert offending == {}
