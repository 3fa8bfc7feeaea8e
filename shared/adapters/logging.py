"""Log records as one JSON object per line for machines, or plain lines for people.

In a container or under a supervisor stderr is not a terminal, and log shippers want
one self-describing JSON object per line: ``ts`` (UTC, milliseconds), ``level``,
``logger``, ``msg``, then every field passed with ``extra=`` (``request_id``, ``org_id``,
...), ``exc`` for tracebacks. At a terminal the same record is one readable line, extras
appended as ``key=value``. ``setup_logging`` picks by ``isatty`` unless told.

Two protections apply to every record our handler writes, whatever the service:
:class:`SecretRedactor` hides API key secrets (in the message and its arguments, the
extras, tracebacks and stack text), and the text format escapes control characters and
indents tracebacks, so a value with a newline in it cannot forge a log line.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from datetime import UTC, datetime
from typing import IO, Any

from shared import codec

_BASE_KEYS = ("ts", "level", "logger", "msg")
#: Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
#: Chatty libraries: their INFO is noise next to ours.
_QUIET = ("aiokafka", "botocore", "aiobotocore", "aioboto3", "aiohttp.access")
_MARK = "_usage_export_handler"

#: An API key (services/api/keys.py: ``ue_<16 hex id>_<43-character secret>``): the id,
#: which is not secret, stays; any run of secret characters after it goes, so a key cut
#: short or mangled in a parser's message is hidden as well.
_KEY_SECRET = re.compile(r"(ue_[0-9a-fA-F]{16}_)[A-Za-z0-9_-]+")
#: Any other bearer token: not a key, but perhaps one with a typo.
_BEARER_TOKEN = re.compile(r"(?i)(bearer\s+)(?!ue_[0-9a-fA-F]{16}_)[^\s'\"\\,;]+")
REDACTED = "[REDACTED]"
#: C0 and C1 control characters, DEL and the Unicode line separators, as escapes.
_CONTROL_ESCAPES = {
    code: {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(chr(code), f"\\x{code:02x}")
    for code in [*range(0x20), *range(0x7F, 0xA0)]
} | {0x2028: "\\u2028", 0x2029: "\\u2029"}


def record_extras(record: logging.LogRecord) -> dict[str, Any]:
    """The fields given with ``extra=`` (never the record's own attributes)."""
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _RECORD_ATTRS and not key.startswith("_")
    }


def escape_controls(text: str) -> str:
    """``text`` with control characters as escapes: one line, whatever it held."""
    return text.translate(_CONTROL_ESCAPES)


def redact(text: str) -> str:
    """``text`` with the secret of every API key (and any other bearer token) hidden."""
    text = _KEY_SECRET.sub(rf"\g<1>{REDACTED}", text)
    return _BEARER_TOKEN.sub(rf"\g<1>{REDACTED}", text)


class SecretRedactor(logging.Filter):
    """Hides API key secrets in a record before any formatter sees it.

    Installed on our handler by :func:`setup_logging`, so it covers every logger of the
    process, libraries included (aiohttp's parser errors quote the request's headers).
    It rewrites the record in place: the message with its arguments, string extras,
    the exception text and the stack text.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message, broken = record.getMessage(), False
        except (TypeError, ValueError, KeyError):  # a broken format string: keep it, redacted
            message, broken = f"{record.msg} (arguments: {record.args!r})", True
        hidden = redact(message)
        if broken or hidden != message:
            record.msg, record.args = hidden, None
        for key, value in record_extras(record).items():
            text = value if isinstance(value, str) else None
            if text is None and not isinstance(value, int | float | bool | type(None)):
                text = str(value)
            if text is not None and redact(text) != text:
                setattr(record, key, redact(text))
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


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
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:  # SecretRedactor may have set it, redacted
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return codec.dumps(entry).decode()


class PlainFormatter(logging.Formatter):
    """``time LEVEL logger message key=value ...`` for a terminal.

    Control characters in the message and the extras are escaped (``\\n``, ``\\x1b``)
    and traceback lines are indented: every line that starts at the margin is a record,
    whatever the values logged.
    """

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        line = escape_controls(self.formatMessage(record))
        extras = record_extras(record)
        if extras:
            line += " " + " ".join(
                f"{escape_controls(key)}={escape_controls(str(value))}"
                for key, value in extras.items()
            )
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        blocks = [record.exc_text or "", self.formatStack(record.stack_info or "")]
        for block in filter(None, blocks):
            line += "".join(f"\n  {escape_controls(text)}" for text in block.splitlines())
        return line


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
    handler.addFilter(SecretRedactor())
    setattr(handler, _MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    return handler
