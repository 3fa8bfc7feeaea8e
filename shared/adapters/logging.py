"""Log records as one JSON object per line for machines, or plain lines for people.

In a container or under a supervisor stderr is not a terminal, and log shippers want
one self-describing JSON object per line: ``ts`` (UTC, milliseconds), ``level``,
``logger``, ``msg``, then every field passed with ``extra=`` (``request_id``, ``org_id``,
...), ``exc`` for tracebacks. At a terminal the same record is one readable line, extras
appended as ``key=value``. ``setup_logging`` picks by ``isatty`` unless told.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

from shared import codec

_BASE_KEYS = ("ts", "level", "logger", "msg")
#: Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
#: Chatty libraries: their INFO is noise next to ours.
_QUIET = ("aiokafka", "botocore", "aiobotocore", "aioboto3", "aiohttp.access")
_MARK = "_usage_export_handler"


def record_extras(record: logging.LogRecord) -> dict[str, Any]:
    """The fields given with ``extra=`` (never the record's own attributes)."""
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _RECORD_ATTRS and not key.startswith("_")
    }


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    try:
        codec.dumps(value)
    except TypeError:  # orjson's JSONEncodeError is a TypeError
        return str(value)
    return value


class JsonFormatter(logging.Formatter):
    """One compact JSON object per record; extras named like a base key get a ``_`` suffix."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        entry: dict[str, Any] = {
            "ts": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record_extras(record).items():
            entry[f"{key}_" if key in _BASE_KEYS else key] = _jsonable(value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return codec.dumps(entry).decode()


class PlainFormatter(logging.Formatter):
    """``time LEVEL logger message key=value ...`` for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = record_extras(record)
        if not extras:
            return line
        head, newline, rest = line.partition("\n")  # extras before any traceback
        suffix = " ".join(f"{key}={value}" for key, value in extras.items())
        return f"{head} {suffix}{newline}{rest}"


def setup_logging(
    level: str | int = "INFO", json: bool | None = None, *, stream: IO[str] | None = None
) -> logging.Handler:
    """Configure the root logger once per process (calling again replaces our handler).

    ``json=None`` chooses JSON when ``stream`` (default stderr) is not a terminal.
    Returns the installed handler.
    """
    target = stream if stream is not None else sys.stderr
    if json is None:
        isatty = getattr(target, "isatty", None)
        json = not (callable(isatty) and isatty())
    handler = logging.StreamHandler(target)
    handler.setFormatter(JsonFormatter() if json else PlainFormatter())
    setattr(handler, _MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    return handler
