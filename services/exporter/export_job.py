"""One export request → one outcome: validate, resolve, read, query, stream, record.

First it takes ``ingestedThrough`` from the broker (``shared.adapters.ingest_progress``):
every event appended before that instant is in the tables it reads next. An export reads
storage format 3 (``shared.columnar.tables``): the workspace's dimension
versions, then picks the facts files of the UTC days the window touches (a closed month
is one merged file) from tables kept open between exports and moved to their latest
commit first (``LatestTables``); an export takes the janitor's roll-ups of the month files
its window holds whole instead (``shared.columnar.rollups``: the users partials, the sums
per key, or the agent messages' partials), unless it is bucketed (or of users by model).
Its type's query (``shared.columnar.queries``) scans those files in a worker thread,
reading only the columns and row groups it needs; the file's bytes (in the request's
format) go up as one object (in parts when large), then its manifest beside it
(``shared.domain.export.manifest``). A request naming a ``destination`` has the file
copied there too (``services.exporter.destinations``) before it is answered 200.

:meth:`Exporter.answer` never raises (cancellation aside): every path ends in a
completion. Transient failures (the store unavailable, a lost race on a record) are
retried with backoff until the request's deadline (``export_deadline_s``, counted from
when this process starts working on it); past it the answer is 503 when the object store
kept failing or never answered (every wait of an export but its query, which takes
seconds, is a store call, so a deadline reached with no failure seen means a store call
hung), else 500 (the last failure was an
unexpected error or a lost race). An unexpected error is retried a few times, then 500.

The request's record (``shared.adapters.request_ledger``) pins the instant the request
was first seen, so every delivery resolves the same window; a request with a recorded
outcome is answered from it (only its signed URL is new). Should its file or its manifest
have been deleted since, the export is written again, to the same key, for the same
window.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Final, TypeVar
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
from aiokafka.errors import KafkaError

from services.exporter.destinations import DestinationCopier, DestinationCopy
from services.exporter.upload import StreamingUpload
from shared.adapters.callback_vetting import CallbackRefused, CallbackVetter
from shared.adapters.ingest_progress import ProgressSource
from shared.adapters.object_store import ObjectStore
from shared.adapters.request_ledger import RequestLedger, RequestRecord
from shared.adapters.signed_completions import completion_of
from shared.clock import Clock, system_clock
from shared.columnar.queries.engine import (
    QueryExport,
    connect,
    export_file,
    warm_engine,
    workspace_options,
)
from shared.columnar.rollups import ROLLUP_KINDS, rolled_up_read, rollup_kind, rollup_members
from shared.columnar.schema import FACTS
from shared.columnar.tables import (
    FACTS_TABLE,
    STORE_ERRORS,
    LatestTables,
    TableStore,
)
from shared.contracts.completions import ExportCompletion
from shared.contracts.export_types import spec
from shared.domain.export.context import WorkspaceOptions
from shared.domain.export.manifest import manifest_bytes, manifest_path
from shared.domain.export.outcomes import ExportFile, Outcome
from shared.domain.export.paths import export_file_path
from shared.domain.export.request_validation import (
    ReadableRequest,
    Rejected,
    ValidRequest,
    check_destination,
    check_workspace_options,
    validate_request,
)
from shared.domain.window import format_instant, to_ms, utc_day_of
from shared.errors import PreconditionFailed, StoreRefused, StoreUnavailable
from shared.retry import Backoff, Failure, is_retriable, retry
from shared.settings import Settings

log = logging.getLogger(__name__)

UNEXPECTED_ATTEMPTS = 3
#: Backoff between tries of a whole answer (each store call has retried on the store's
#: policy already); the deadline, not a number of tries, bounds it.
_RETRY_BASE_S = 0.5
_RETRY_MAX_S = 10.0
_RETRY_LATER = "retry later with the same request_id"
#: How long an export waits for the broker to tell ``ingestedThrough``.
_PROGRESS_TIMEOUT_S = 10.0
_UTC = ZoneInfo("UTC")
_Read = TypeVar("_Read")


@dataclass
class _Attempts:
    """The last failure seen, to explain a deadline that passed."""

    last_error: BaseException | None = None


class Exporter:
    """Answers export requests; one instance serves many concurrent requests."""

    def __init__(
        self,
        settings: Settings,
        *,
        tables: TableStore,
        exports: ObjectStore,
        clock: Clock = system_clock,
        progress: ProgressSource | None = None,
        vetter: CallbackVetter | None = None,
        destinations: Mapping[str, DestinationCopier] | None = None,
    ) -> None:
        self._settings = settings
        self._vetter = vetter or CallbackVetter.of(settings)
        self._destinations = dict(destinations or {})
        self._tables = LatestTables(tables)
        self._exports = exports
        self._ledger = RequestLedger(exports)
        self._clock = clock
        self._progress = progress

    async def warm_up(self, org_ids: list[str]) -> int:
        """Open the tables of ``org_ids`` (as many as are kept open), read their roll-ups'
        members and run the query engine once, so that the first export after a start
        does not pay for any of it;
        returns how many workspaces were opened. Failures only make a first export slower."""
        await asyncio.to_thread(warm_engine)
        opened = 0
        for org_id in org_ids[: self._tables.capacity]:
            try:
                await self._tables.open(org_id)
                # What an export asks of the roll-ups first: their members, cached.
                for kind in ROLLUP_KINDS:
                    await self._tables.planned(
                        org_id, [kind.table], functools.partial(rollup_members, kind)
                    )
                opened += 1
            except STORE_ERRORS:
                log.warning("warm-up: cannot open the tables of %s", org_id, exc_info=True)
        return opened

    async def answer(self, request: ReadableRequest) -> ExportCompletion:
        """The completion for one request (a redelivery gets the recorded outcome)."""
        attempts = _Attempts()
        deadline = self._settings.export_deadline_s
        try:
            async with asyncio.timeout(deadline):
                outcome = await self._with_retries(request, attempts)
        except TimeoutError:
            if isinstance(attempts.last_error, StoreUnavailable):
                outcome = Outcome(
                    503,
                    f"the object store stayed unavailable for {deadline:g} s; {_RETRY_LATER}",
                )
            elif attempts.last_error is None:
                # Still in its first attempt: waiting on a store call that never answered
                # (a hung or partitioned store), before the client's own timeouts fired.
                outcome = Outcome(
                    503,
                    f"the object store did not answer within {deadline:g} s; {_RETRY_LATER}",
                )
            else:
                outcome = Outcome(
                    500, f"the export did not finish within {deadline:g} s; {_RETRY_LATER}"
                )
        return await completion_of(
            outcome,
            request_id=request.request_id,
            org_id=request.org_id,
            exports=self._exports,
            ttl_s=self._settings.signed_url_ttl_s,
            now=self._clock(),
        )

    async def _with_retries(self, request: ReadableRequest, attempts: _Attempts) -> Outcome:
        unexpected = 0

        def worth_retrying(exc: Exception) -> bool:
            nonlocal unexpected
            attempts.last_error = exc
            if _transient(exc):
                return True
            unexpected += 1
            return unexpected < UNEXPECTED_ATTEMPTS

        def report(failure: Failure) -> None:
            if _transient(failure.error):
                log.warning("export %s: %s; retrying", request.request_id, failure.error)
            else:
                log.error(
                    "export %s failed (attempt %s)",
                    request.request_id,
                    unexpected,
                    exc_info=failure.error,
                )

        try:
            return await retry(
                lambda: self._answer_once(request),
                Backoff(_RETRY_BASE_S, _RETRY_MAX_S, jitter=True),
                retriable=worth_retrying,
                on_retry=report,
            )
        except Exception as exc:
            log.error("export %s failed (attempt %s)", request.request_id, unexpected, exc_info=exc)
            return Outcome(
                500,
                f"the export failed with an internal error ({type(exc).__name__}); {_RETRY_LATER}",
            )

    async def _answer_once(self, request: ReadableRequest) -> Outcome:
        if request.org_id is None:  # no record can be keyed by an invalid org id
            rejected = validate_request(request, now=self._clock())
            message = rejected.message if isinstance(rejected, Rejected) else "invalid org_id"
            return Outcome(400, message)
        record = await self._ledger.open(request.org_id, request.request_id, self._clock())
        replace = False
        if record.outcome is not None:
            file = record.outcome.file
            if file is None or await self._written(file):
                return record.outcome
            log.warning(
                "file %s of request %s or its manifest is gone: exporting it again",
                file.file_path,
                request.request_id,
            )
            replace = True
        validated = validate_request(request, now=record.first_seen)
        if not isinstance(validated, Rejected):
            validated = check_destination(validated, self._destinations) or validated
        if isinstance(validated, Rejected):
            # Contract §4a: the callback gets every outcome, this 400 too, when it passes.
            callback = request.payload.get("callback_url")
            if isinstance(callback, str):
                await self._callback_refused(record, callback)
            outcome = Outcome(validated.status, validated.message)
        elif (refused := await self._callback_refused(record, validated.callback_url)) is not None:
            outcome = Outcome(400, refused)
        else:
            outcome = await self._export(validated)
        return await self._ledger.settle(record, outcome, replace=replace)

    async def _callback_refused(
        self, record: RequestRecord, callback_url: str | None
    ) -> str | None:
        """Why the request's callback URL may not be called (its 400), else None after
        recording it for the delivery service (before any completion can exist)."""
        if callback_url is None:
            return None
        try:
            await self._vetter.vet(callback_url)
        except CallbackRefused as exc:
            return str(exc)
        await self._ledger.note_callback(record, callback_url)
        return None

    async def _written(self, file: ExportFile) -> bool:
        """Whether the recorded file and its manifest are both in the store (a crash
        between the two writes, or a deletion, leaves one without the other)."""
        manifest = manifest_path(file.file_path, file.format)
        for path in (file.file_path, manifest):
            if await self._exports.head(path) is None:
                return False
        return True

    async def _ingested_through(self) -> str | None:
        """``ingestedThrough``, taken before any table is read; None (logged) when the
        broker cannot tell it now: the export goes on without it."""
        if self._progress is None:
            return None
        try:
            async with asyncio.timeout(_PROGRESS_TIMEOUT_S):
                through = await self._progress.through()
        except (KafkaError, OSError, TimeoutError, LookupError) as exc:
            log.warning("ingestedThrough unknown: %s", exc)
            return None
        return format_instant(to_ms(through), _UTC)

    async def _export(self, request: ValidRequest) -> Outcome:
        started = time.monotonic()
        org_id, window = request.org_id, request.window
        ingested_through = await self._ingested_through()
        dimensions = await _reading(self._tables.dimensions(org_id))
        options = await asyncio.to_thread(settings_of, dimensions)
        rejected = check_workspace_options(request, options)
        if rejected is not None:
            return Outcome(rejected.status, rejected.message)
        first_day, last_day = utc_day_of(window.start_ms), utc_day_of(window.last_ms)
        columns = spec(request.data_type).facts_columns
        # A bucketed export reads facts only: roll-ups hold no buckets.
        kind = None if request.buckets else rollup_kind(request.data_type, request.group_by)
        rollups: dict[str, ds.Dataset | pa.Table] = {}
        rolled_up = 0
        if kind is not None:
            # The roll-ups of the month files the window covers whole, the facts of the rest.
            schema = pa.schema([FACTS.field(name) for name in columns])
            plan = functools.partial(
                rolled_up_read,
                kind,
                facts_schema=schema,
                first_day=first_day,
                last_day=last_day,
                start_ms=window.start_ms,
                end_ms=window.end_ms,
            )
            read = await _reading(self._tables.planned(org_id, [FACTS_TABLE, kind.table], plan))
            facts, rollups[kind.table], rolled_up = read.facts, read.rollups, read.rolled_up_files
        else:
            facts = await _reading(self._tables.facts_scan(org_id, first_day, last_day, columns))
        read_at = time.monotonic()
        # The query scans the files (DuckDB and the Arrow kernels release the GIL: the
        # loop goes on meanwhile); a store failure in the scan is the store's, like a read's.
        export = await _reading(
            asyncio.to_thread(_scanning, query_export, request, facts, dimensions, options, rollups)
        )
        del facts, dimensions, rollups
        queried_at = time.monotonic()
        date_range = window.date_range()
        if not export.rows:
            return Outcome(
                404,
                f"No data found: workspace {org_id} has no "
                f"{request.data_type.value} rows between {date_range['from']} "
                f"and {date_range['to']}",
            )
        path = export_file_path(
            request.data_type,
            org_id,
            window.period_start(),
            window.period_end(),
            request.request_id,
            request.format,
        )
        owner = await self._ledger.claim_file(path, request.request_id)
        if owner is not None:
            return Outcome(
                409,
                f"{path} already holds the export of request {owner}, whose id "
                "shares its first 8 characters with this one; use a unique "
                "request_id such as a UUID",
            )
        data = export.data
        part_size = self._settings.export_part_size_bytes
        async with StreamingUpload(
            self._exports,
            path,
            part_size=part_size,
            content_type=request.format.content_type,
            metadata={"request-id": request.request_id, "org-id": org_id},
        ) as upload:
            for offset in range(0, len(data), part_size):
                await upload.write(data[offset : offset + part_size])
            await upload.complete()
        file = ExportFile(
            file_path=path,
            data_type=request.data_type.value,
            record_count=export.rows,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            date_range=date_range,
            format=request.format.value,
            ingested_through=ingested_through,
        )
        await self._exports.put_with_metadata(
            manifest_path(path, request.format.value),
            manifest_bytes(request, file, export.header),
            content_type="application/json",
            metadata={"request-id": request.request_id, "org-id": org_id},
        )
        if request.destination is not None:
            failed = await self._copy(request, request.destination, file, data)
            if failed is not None:
                return failed
        finished = time.monotonic()
        log.info(
            "export %s: %s %s rows, %s bytes, %s parts, facts of %s UTC days (%s month files "
            "as roll-ups), %.2fs (planning %.2fs, reading with query and CSV %.2fs, "
            "upload %.2fs)",
            request.request_id,
            export.rows,
            request.data_type.value,
            len(data),
            upload.parts,
            (last_day - first_day).days + 1,
            rolled_up,
            finished - started,
            read_at - started,
            queried_at - read_at,
            finished - queried_at,
        )
        return Outcome(200, file=file)

    async def _copy(
        self, request: ValidRequest, destination: str, file: ExportFile, data: bytes
    ) -> Outcome | None:
        """Copy the file to the request's destination; a refusal (wrong credentials, no
        such bucket) is a 503 that is not recorded, so the same request id retries the
        whole export later. A store that is away is retried until the deadline (503)."""
        copier = self._destinations[destination]
        window = request.window
        copy = DestinationCopy(
            data_type=request.data_type.value,
            period=f"{window.period_start().isoformat()}_{window.period_end().isoformat()}",
            filename=file.file_path.rsplit("/", 1)[-1],
            data=data,
            sha256=file.sha256,
            content_type=request.format.content_type,
        )
        try:
            await copier.copy(copy)
        except StoreRefused as exc:
            log.error(
                "export %s: destination %s refused the copy: %s",
                request.request_id,
                destination,
                exc,
            )
            return Outcome(
                503,
                f"the file was exported but destination {destination!r} refused its "
                f"copy ({exc}); {_RETRY_LATER}",
            )
        return None


async def _reading(read: Awaitable[_Read]) -> _Read:
    """A table read; the store's I/O failures are :class:`StoreUnavailable` (delta-rs
    raises ``OSError`` once its own retries are spent), retried until the deadline."""
    try:
        return await read
    except OSError as exc:
        raise StoreUnavailable(f"reading the workspace's tables failed: {exc}") from exc


#: How DuckDB reports a failure of the Arrow stream it scans (a registered dataset whose
#: file reads failed: the store's ``OSError`` inside), in its error's message.
_SCAN_FAILED: Final = re.compile(
    r"reading the stream registered as '\w+' failed: (IOError|OSError)"
)


def _scanning(query: Callable[..., _Read], *args: object) -> _Read:
    """Run ``query``; a failure of DuckDB's scan of the store's files is the ``OSError``
    it wraps (so :func:`_reading` answers it as the store's), anything else as it is."""
    try:
        return query(*args)
    except duckdb.Error as exc:
        if _SCAN_FAILED.search(str(exc)):
            raise OSError(str(exc)) from exc
        raise


def settings_of(dimensions: pa.Table) -> WorkspaceOptions:
    """The workspace's latest settings (``workspace_options``), before any facts are read."""
    con = connect(FACTS.empty_table(), dimensions)
    try:
        return workspace_options(con)
    finally:
        con.close()


def query_export(
    request: ValidRequest,
    facts: pa.Table | ds.Dataset,
    dimensions: pa.Table,
    options: WorkspaceOptions,
    rollups: Mapping[str, pa.Table | ds.Dataset] | None = None,
) -> QueryExport:
    """The export's CSV, computed by its type's query over ``facts`` (at least the
    columns its spec's ``facts_columns`` names), ``dimensions`` and ``rollups`` (by
    relation name: the stored partials of facts not in ``facts``) (blocking)."""
    window = request.window
    con = connect(facts, dimensions, rollups, request.buckets)
    try:
        return export_file(
            con,
            request.data_type,
            org_id=request.org_id,
            group_by=request.group_by,
            start_ms=window.start_ms,
            end_ms=window.end_ms,
            period_start=window.period_start().isoformat(),
            period_end=window.period_end().isoformat(),
            options=options,
            export_format=request.format,
            buckets=request.buckets,
        )
    finally:
        con.close()


def _transient(exc: Exception) -> bool:
    """Worth another try of the whole answer: the error says retrying can help (the store
    unavailable), or a record write lost a race (the next try reads the records again)."""
    return is_retriable(exc) or isinstance(exc, PreconditionFailed)
