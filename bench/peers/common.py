"""What every peer shares: its configuration, the counters it computes, its marks file."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: The counters of one (workspace, UTC day, user, model), in this order.
FIELDS = ("messages", "requests", "prompt", "completion", "cached", "creation")


@dataclass(frozen=True, slots=True)
class PeerConfig:
    bootstrap: str
    topic: str
    group: str
    marks: Path
    state_dir: Path
    session_timeout_ms: int
    expected: int  # records the peer's last stage sees once the input is consumed

    @classmethod
    def from_env(cls) -> PeerConfig:
        return cls(
            bootstrap=os.environ["BENCH_BOOTSTRAP"],
            topic=os.environ["BENCH_TOPIC"],
            group=os.environ["BENCH_GROUP"],
            marks=Path(os.environ["BENCH_MARKS"]),
            state_dir=Path(os.environ.get("BENCH_STATE_DIR", ".")),
            session_timeout_ms=int(os.environ.get("BENCH_SESSION_TIMEOUT_MS", "6000")),
            expected=int(os.environ.get("BENCH_EXPECTED", "0")),
        )


def utc_day(occurred_at: str) -> str:
    return datetime.fromisoformat(occurred_at).astimezone(UTC).date().isoformat()


def counter_key(event: dict[str, Any]) -> str | None:
    """``org|day|user|model`` of a message event; None for every other event type."""
    if event.get("type") != "message":
        return None
    return f"{event['org_id']}|{utc_day(event['occurred_at'])}|{event['user_id']}|{event['model']}"


def counters(event: dict[str, Any]) -> list[int]:
    """One message's contribution, in :data:`FIELDS` order."""
    usage = event.get("usage") or {}
    return [
        1,
        int(event.get("requests") or 1),
        int(usage.get("prompt_tokens") or 0),
        int(usage.get("completion_tokens") or 0),
        int(usage.get("cached_prompt_tokens") or 0),
        int(usage.get("cache_creation_tokens") or 0),
    ]


def add(total: list[int] | None, event: dict[str, Any]) -> list[int]:
    contribution = counters(event)
    if total is None:
        return contribution
    return [a + b for a, b in zip(total, contribution, strict=True)]


class Marks:
    """Progress of a peer as JSON lines in a file: when the first input record was
    processed, when the last stage had folded ``expected`` records (``done_at``), and
    the counts at exit."""

    def __init__(self, path: Path, expected: int | None = None) -> None:
        self._path = path
        self._expected = expected
        self.first_at: float | None = None
        self.done_at: float | None = None
        self.count = 0
        self.folded_count = 0

    def seen(self, records: int = 1) -> None:
        """``records`` input records were taken from the topic."""
        if self.first_at is None:
            self.first_at = time.time()
            self._write({"first_record_at": self.first_at})
        self.count += records

    def folded(self, records: int = 1) -> None:
        """``records`` reached the last stage (the fold)."""
        self.folded_count += records
        if self.done_at is None and self._expected and self.folded_count >= self._expected:
            self.done_at = time.time()
            self._write({"done_at": self.done_at, "folded": self.folded_count})

    def close(self, **extra: Any) -> None:
        self._write({"count": self.count, "folded": self.folded_count} | extra)

    def _write(self, line: dict[str, Any]) -> None:
        with self._path.open("a", encoding="utf-8") as stream:
            stream.write(json.dumps(line) + "\n")


def read_marks(path: Path) -> dict[str, Any]:
    """The last values of every key written to a marks file (``{}`` if none)."""
    merged: dict[str, Any] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return merged
    for line in lines:
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(item, dict):
            merged |= {key: value for key, value in item.items() if value is not None}
    return merged
