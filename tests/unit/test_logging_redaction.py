"""No log line holds an API key's secret, whatever carries it: the message or its
arguments, extras, an exception's text and traceback, stack text, a library's logger
(aiohttp's parser errors quote the request's headers), in JSON and in text."""

from __future__ import annotations

import io
import logging
import secrets
from collections.abc import Iterator

import pytest

from services.api.keys import parse_key
from shared.adapters.logging import REDACTED, redact, setup_logging


def a_key() -> str:
    """A key of the shape services/api/keys.py issues (checked by its own parser)."""
    key = f"ue_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}"
    assert parse_key(key) is not None
    return key


KEY = a_key()
KEY_ID, SECRET = KEY[3:19], KEY[20:]


@pytest.fixture(params=[True, False], ids=["json", "text"])
def log_stream(request: pytest.FixtureRequest) -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    installed = setup_logging("DEBUG", json=request.param, stream=stream)
    yield stream
    root.removeHandler(installed)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


def assert_no_secret(written: str) -> None:
    assert written, "nothing was logged"
    assert SECRET[:8] not in written
    assert f"ue_{KEY_ID}_{REDACTED}" in written  # the id stays: it names the key


def test_a_key_in_the_message_arguments(log_stream: io.StringIO) -> None:
    logging.getLogger("usage.test").warning("header %s refused", f"Bearer {KEY}")
    assert_no_secret(log_stream.getvalue())


def test_a_key_in_an_exception_and_its_traceback(log_stream: io.StringIO) -> None:
    try:
        try:
            raise ValueError(f"b'Authorization: Bearer {KEY}\\x00'")
        except ValueError as inner:
            raise RuntimeError(f"parsing {KEY} failed") from inner
    except RuntimeError:
        logging.getLogger("aiohttp.server").exception("Error handling request")
    written = log_stream.getvalue()
    assert "Traceback" in written
    assert "RuntimeError" in written
    assert_no_secret(written)


def test_a_key_in_extras_and_in_stack_text(log_stream: io.StringIO) -> None:
    log = logging.getLogger("usage.test")
    log.info("request", extra={"authorization": f"Bearer {KEY}", "headers": {"a": KEY}})
    record = logging.makeLogRecord(
        {
            "name": "usage.test",
            "levelno": logging.INFO,
            "levelname": "INFO",
            "msg": "with a stack",
            "stack_info": f"Stack: {KEY}",
        }
    )
    log.handle(record)
    written = log_stream.getvalue()
    assert "with a stack" in written
    assert_no_secret(written)


def test_a_broken_format_string_still_hides_the_key(log_stream: io.StringIO) -> None:
    logging.getLogger("usage.test").info("two %s %s", KEY)
    assert_no_secret(log_stream.getvalue())


def test_keys_cut_short_and_other_bearer_tokens_are_hidden() -> None:
    assert SECRET[:10] not in redact(f"line: {KEY[:30]}")
    assert redact("Authorization: Bearer not-a-key.abc") == f"Authorization: Bearer {REDACTED}"
    assert redact(f"authorization: bearer {KEY}") == f"authorization: bearer ue_{KEY_ID}_{REDACTED}"
    assert redact("no secret here, ue_ alone") == "no secret here, ue_ alone"
