"""One line, not a traceback, when a command cannot reach the broker or the store.

``usage-export`` commands that fail because a dependency does not answer end with one
line naming what was tried (the address and the ``USAGE_`` setting it came from) and what
to do, and exit with :data:`UNREACHABLE` (3, as ``dlq`` and ``status`` do). With
``--log-level debug`` the traceback follows.
"""

from __future__ import annotations

from collections.abc import Iterator

from aiokafka.errors import KafkaConnectionError

from shared.errors import StoreUnavailable
from shared.settings import Settings

UNREACHABLE = 3
WHAT_TO_DO = (
    "start `usage-export up`, or load its settings with `set -a; . DATA_DIR/usage.env; set +a`"
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, its causes and contexts, and the members of exception groups."""
    seen: set[int] = set()
    pending = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)


def unreachable_dependency(exc: BaseException, settings: Settings) -> str | None:
    """The one line for ``exc`` if it says the broker or the store could not be reached."""
    for error in _chain(exc):
        if isinstance(error, KafkaConnectionError):
            return (
                f"cannot reach the broker at {settings.kafka_bootstrap} "
                f"(USAGE_KAFKA_BOOTSTRAP): {WHAT_TO_DO}"
            )
        if isinstance(error, StoreUnavailable):
            return (
                f"cannot reach the object store at {settings.s3_endpoint} "
                f"(USAGE_S3_ENDPOINT): {WHAT_TO_DO}"
            )
    return None
