"""One error root. Each error says whether retrying can help (``retriable``); callers decide
from that (``shared.retry.is_retriable``), as aiokafka's coordinator does from its errors'."""

from __future__ import annotations


class UsageExportError(Exception):
    """Root of every error this project raises on purpose."""

    retriable: bool = False


class RetriableError(UsageExportError):
    """A transient failure (store or broker unavailable, throttled, timed out): try again."""

    retriable = True


class StoreUnavailable(RetriableError):
    """The object store did not answer or answered 5xx after our retries."""


class StoreRefused(UsageExportError):
    """The object store refused a request for good (403, 400, ...): retrying cannot help.
    ``status`` is the HTTP status (0 when the request never left), ``code`` the store's."""

    def __init__(self, message: str, *, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class UploadNotFound(StoreRefused):
    """A multipart upload is gone: completed by an earlier attempt, or aborted."""


class PreconditionFailed(UsageExportError):
    """A conditional write lost a race: someone else wrote the object since we read it."""


class EmbeddedStackError(UsageExportError):
    """The embedded broker or object store could not be started or reached."""


class FencedOut(UsageExportError):
    """A table commit would record a Kafka position that another writer advanced since this
    writer's snapshot (a zombie, or a writer that lost a rebalance race): nothing of it was
    committed. Reload the table's positions and skip what they cover; never retry as is."""


class ConfigurationError(UsageExportError):
    """A setting is missing, or the deployment does not match this version; the message
    names what to set or do (the CLI prints it in one line, exit 2)."""


class StorageFormatMismatch(ConfigurationError):
    """The aggregates bucket holds state of another storage format than this code reads."""
