"""Dead letters as operators see them: grouped by reason, chosen, and turned back into records.

A dead letter (``shared.adapters.dead_letters``) is the original key and value plus headers
saying why (``error``, ``error.reason``) and where from (``source.topic``,
``source.partition``, ``source.offset``); a value too large for the broker is kept
truncated, with ``value.truncated`` = the original size. Everything here is pure: reading
and producing are in ``dlq_actions``, so the rules can be tested without a broker.

Replaying re-produces the original record to its source topic with the original key and
value. It is safe to repeat: ingest deduplicates by (``org_id``, ``event_id``) and the
exporter answers a ``request_id`` it has seen from its record, so a letter replayed twice
counts once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

#: Headers written by ``dead_letter_headers``; none of them travels back on replay.
DEAD_LETTER_HEADERS = frozenset(
    {
        "error",
        "error.reason",
        "source.topic",
        "source.partition",
        "source.offset",
        "value.truncated",
    }
)
#: Added to a replayed record: ``dlq-topic:partition:offset`` of the letter it came from.
REPLAYED_FROM = "replayed.from"
UNKNOWN_REASON = "unknown"

_PREVIEW_CHARS = 80


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record of a dead-letter topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int | None = None

    @classmethod
    def from_record(cls, record: Any) -> DeadLetter:
        """From an aiokafka ``ConsumerRecord`` (header values may be ``None``)."""
        headers = tuple((str(name), bytes(value or b"")) for name, value in record.headers or ())
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            headers=headers,
            timestamp_ms=record.timestamp,
        )

    def header(self, name: str) -> str | None:
        """The last value of header ``name`` as text, or None when absent."""
        found = None
        for key, value in self.headers:
            if key == name:
                found = value
        return None if found is None else found.decode("utf-8", "replace")

    @property
    def position(self) -> str:
        """``topic:partition:offset``: where this letter is, as ``replayed.from`` says it."""
        return f"{self.topic}:{self.partition}:{self.offset}"

    @property
    def reason(self) -> str:
        """``error.reason``; older letters without it: the ``reason:`` prefix of ``error``."""
        reason = self.header("error.reason")
        if reason:
            return reason
        error = self.header("error") or ""
        prefix, colon, _ = error.partition(":")
        prefix = prefix.strip()
        return prefix if colon and prefix and " " not in prefix else UNKNOWN_REASON

    @property
    def error(self) -> str:
        return self.header("error") or ""

    @property
    def source_topic(self) -> str | None:
        return self.header("source.topic") or None

    @property
    def source_offset(self) -> str:
        """``partition:offset`` in the source topic, as far as the headers tell."""
        partition = self.header("source.partition")
        offset = self.header("source.offset")
        return f"{partition}:{offset}" if partition is not None and offset is not None else ""

    @property
    def truncated_size(self) -> int | None:
        """The original value's size when the letter holds only its beginning."""
        size = self.header("value.truncated")
        if size is None:
            return None
        try:
            return int(size)
        except ValueError:
            return -1  # unreadable size: still truncated

    def key_text(self) -> str:
        return "" if self.key is None else _text(self.key)

    def value_preview(self, chars: int = _PREVIEW_CHARS) -> str:
        """The value's first ``chars`` characters on one line (non-UTF-8 shown escaped)."""
        if self.value is None:
            return "(no value)"
        text = " ".join(_text(self.value[: chars * 4]).split())
        return text if len(text) <= chars else text[: chars - 1] + "…"

    def to_json(self, *, preview_chars: int = _PREVIEW_CHARS) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "offset": self.offset,
            "timestamp_ms": self.timestamp_ms,
            "key": None if self.key is None else self.key_text(),
            "reason": self.reason,
            "error": self.error,
            "source_topic": self.source_topic,
            "source_offset": self.source_offset or None,
            "value_bytes": None if self.value is None else len(self.value),
            "value_truncated_from": self.truncated_size,
            "value_preview": self.value_preview(preview_chars),
        }


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return repr(data)[2:-1]  # b'...' without the b'' around it: escapes stay visible


@dataclass
class ReasonStats:
    count: int = 0
    first: str = ""
    last: str = ""


@dataclass
class DeadLetterSummary:
    """Counts per reason over a whole topic, and the first ``limit`` letters in full."""

    topic: str
    limit: int
    total: int = 0
    reasons: dict[str, ReasonStats] = field(default_factory=dict)
    letters: list[DeadLetter] = field(default_factory=list)

    def add(self, letter: DeadLetter) -> None:
        self.total += 1
        stats = self.reasons.setdefault(letter.reason, ReasonStats(first=letter.position))
        stats.count += 1
        stats.last = letter.position
        if len(self.letters) < self.limit:
            self.letters.append(letter)

    def by_count(self) -> list[tuple[str, ReasonStats]]:
        """Reasons, most frequent first (then by name, so the order is stable)."""
        return sorted(self.reasons.items(), key=lambda item: (-item[1].count, item[0]))

    def to_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "total": self.total,
            "reasons": {
                reason: {"count": stats.count, "first": stats.first, "last": stats.last}
                for reason, stats in self.by_count()
            },
            "letters": [letter.to_json() for letter in self.letters],
        }


@dataclass(frozen=True, slots=True)
class OffsetRef:
    """``--offset N`` (any partition) or ``--offset P:N``."""

    offset: int
    partition: int | None = None

    @classmethod
    def parse(cls, text: str) -> OffsetRef:
        partition, colon, offset = text.strip().rpartition(":")
        try:
            parsed = cls(int(offset), int(partition) if colon else None)
        except ValueError:
            raise ValueError(f"not an offset: {text!r} (use N or PARTITION:N)") from None
        if parsed.offset < 0 or (parsed.partition is not None and parsed.partition < 0):
            raise ValueError(f"offsets and partitions are >= 0, got {text!r}")
        return parsed

    def matches(self, letter: DeadLetter) -> bool:
        return letter.offset == self.offset and self.partition in (None, letter.partition)


@dataclass(frozen=True)
class Selection:
    """Which letters to replay: every one, or those matching any reason or any offset."""

    reasons: frozenset[str] = frozenset()
    offsets: frozenset[OffsetRef] = frozenset()
    everything: bool = False

    @property
    def is_empty(self) -> bool:
        return not (self.everything or self.reasons or self.offsets)

    def matches(self, letter: DeadLetter) -> bool:
        if self.everything:
            return True
        return letter.reason in self.reasons or any(ref.matches(letter) for ref in self.offsets)


@dataclass(frozen=True, slots=True)
class ReplayRecord:
    """What to produce for one letter: the original record, back to its source topic."""

    letter: DeadLetter
    topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class Refusal:
    letter: DeadLetter
    why: str


def plan_replay(letter: DeadLetter) -> ReplayRecord | Refusal:
    """The record a letter came from, or why it cannot be re-produced faithfully."""
    size = letter.truncated_size
    if size is not None:
        shown = f"{size:,} bytes" if size >= 0 else "an unknown size"
        return Refusal(
            letter,
            f"value truncated in the dead letter (original: {shown}); the full value is not "
            "in the DLQ, so re-send it from its producer",
        )
    target = letter.source_topic
    if target is None:
        return Refusal(letter, "no source.topic header: cannot tell where it came from")
    if target == letter.topic:
        return Refusal(letter, f"source.topic is the dead-letter topic itself ({target})")
    headers = tuple(
        (name, value)
        for name, value in letter.headers
        if name not in DEAD_LETTER_HEADERS and name != REPLAYED_FROM
    )
    headers += ((REPLAYED_FROM, letter.position.encode()),)
    return ReplayRecord(letter, target, letter.key, letter.value, headers)


@dataclass
class ReplayReport:
    """What a replay did (or, with ``dry_run``, would do)."""

    topic: str
    dry_run: bool
    scanned: int = 0
    seen: Counter[str] = field(default_factory=Counter)
    replayed: Counter[str] = field(default_factory=Counter)
    targets: Counter[str] = field(default_factory=Counter)
    refused: list[Refusal] = field(default_factory=list)

    @property
    def replayed_total(self) -> int:
        return sum(self.replayed.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "dry_run": self.dry_run,
            "scanned": self.scanned,
            "seen": dict(sorted(self.seen.items())),
            "replayed": dict(sorted(self.replayed.items())),
            "targets": dict(sorted(self.targets.items())),
            "refused": [
                {
                    "position": refusal.letter.position,
                    "reason": refusal.letter.reason,
                    "why": refusal.why,
                }
                for refusal in self.refused
            ],
        }
