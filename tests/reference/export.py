"""The reference export: request in, header and rows (exact cell strings) out."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from tests.reference import buckets, cells, columns, others, users
from tests.reference.log import EventLog, OrgLog, build_log
from tests.reference.window import (
    DATA_TYPES,
    GROUP_BYS,
    RequestRejected,
    Window,
    check_id,
    resolve_window,
)

Row = dict[str, str]
_Builder = Callable[[OrgLog, Window, "str | None"], list[Any]]


@dataclass(frozen=True)
class ReferenceResult:
    """What the exporter must produce for one request; ``rows`` are exact CSV cell texts,
    ``values`` the same cells before the CSV's formula guard (what the typed formats hold)."""

    data_type: str  # canonical: "assistants" for the "agents" alias
    header: list[str]
    rows: list[list[str]]
    date_range: dict[str, str]
    period_start: str
    period_end: str
    window: Window
    values: list[list[str]]

    @property
    def status(self) -> int:
        """200, or 404 (``No data found``) when the export has no rows."""
        return 200 if self.rows else 404


def _user_rows(org: OrgLog, window: Window, group_by: str | None) -> list[Any]:
    return [(count, (user_id, value), row) for count, user_id, value, row in
            users.user_rows(org, window, group_by)]  # fmt: skip


_BUILDERS: dict[str, _Builder] = {
    "users": _user_rows,
    "assistants": others.agent_rows,
    "api_keys": others.api_key_rows,
    "projects": others.project_rows,
    "models": others.model_rows,
}


def _order(keyed: list[Any]) -> list[Row]:
    """Main count descending, then ids ascending (code points; ``False`` before ``True``)."""
    return [row for _, _, row in sorted(keyed, key=lambda item: (-item[0], item[1]))]


def reference_export(
    events: Iterable[bytes | dict[str, Any]] | EventLog,
    *,
    org_id: str,
    data_type: str,
    from_date: str,
    from_tz: str,
    to_date: str,
    to_tz: str,
    group_by: str | None = None,
    now: datetime,
    valid_at: datetime | None = None,
    bucket: str | None = None,
) -> ReferenceResult:
    """The export contract §3/§5 defines, computed straight from raw events.

    ``events`` are raw values in arrival order (or a log built once with :func:`build_log`);
    ``now`` is the export time (clamping, the 12-month rule for ``from``); ``valid_at`` is
    the ingest time the events' own 12-month / 24-hour rule is judged at (default ``now``).
    With a ``bucket``, each bucket's rows are the export of the bucket's part of the window
    with attributes at the window's end, less the rows without activity, bucket by bucket,
    their money cells carrying the rounding (``buckets.carry_money``).
    Raises :class:`RequestRejected` (status 400) for a request the exporter must refuse.
    """
    check_id("org_id", org_id)
    kind = DATA_TYPES.get(data_type)
    if kind is None:
        raise RequestRejected(400, f"unknown data_type {data_type!r}")
    if group_by is not None and group_by not in GROUP_BYS[kind]:
        raise RequestRejected(400, f"group_by {group_by!r} is not available for {data_type}")
    window = resolve_window(
        from_date=from_date, from_tz=from_tz, to_date=to_date, to_tz=to_tz, now=now
    )
    log = events if isinstance(events, EventLog) else build_log(events, valid_at=valid_at or now)
    org = log.org(org_id)
    byok, user_level_data = org.workspace_settings()
    if group_by == "deployment" and not byok:
        raise RequestRejected(400, "group_by deployment is only available for BYOK workspaces")
    header = columns.header(kind, byok=byok, user_level_data=user_level_data, group_by=group_by)
    fixed = {"period_start": window.period_start, "period_end": window.period_end,
             "org_id": org_id}  # fmt: skip
    parts: list[tuple[Row, list[Row]]]
    if bucket is None:
        parts = [({}, _order(_BUILDERS[kind](org, window, group_by)))]
    else:
        header = [*header[:2], "bucket_start", "bucket_end", *header[2:]]
        entity = buckets.ENTITY_COLUMN[kind]
        parts = []
        before: list[Row] = []
        for first, last, part in buckets.bucket_windows(window, from_tz, bucket):
            active = buckets.active_entities(org, kind, part)
            ordered = _order(_BUILDERS[kind](org, part, group_by))
            if active is not None and entity is not None:
                ordered = [row for row in ordered if row[entity] in active]
            prefix = replace(part, start=window.start)
            through = [row for *_, row in _BUILDERS[kind](org, prefix, group_by)]
            buckets.carry_money(kind, group_by, ordered, through, before)
            before = through
            parts.append(({"bucket_start": first, "bucket_end": last}, ordered))
    values = [
        [(fixed | dates | row)[column] for column in header]
        for dates, ordered in parts
        for row in ordered
    ]
    rows = [[cells.guard(cell) for cell in row] for row in values]
    return ReferenceResult(
        data_type=kind,
        header=header,
        rows=rows,
        date_range=window.date_range,
        period_start=window.period_start,
        period_end=window.period_end,
        window=window,
        values=values,
    )


def reference_request(
    events: Iterable[bytes | dict[str, Any]] | EventLog,
    request: dict[str, Any],
    *,
    now: datetime,
    valid_at: datetime | None = None,
) -> ReferenceResult:
    """:func:`reference_export` for an export-request message as contract §3 shows it.

    A bound's ``timezone`` may be left out (or ``null``): it is then ``UTC``, as the
    request schema (``docs/contracts/schemas/export-request.json``) gives it."""
    try:
        bounds = request["from"], request["to"]
        dates = bounds[0]["date"], bounds[1]["date"]
        zones = ["UTC" if bound.get("timezone") is None else bound["timezone"] for bound in bounds]
        return reference_export(
            events,
            org_id=request["org_id"],
            data_type=request["data_type"],
            from_date=dates[0],
            from_tz=zones[0],
            to_date=dates[1],
            to_tz=zones[1],
            group_by=request.get("group_by"),
            now=now,
            valid_at=valid_at,
            bucket=request.get("bucket"),
        )
    except (KeyError, TypeError):
        raise RequestRejected(400, "malformed export request") from None


def reference_csv_bytes(result: ReferenceResult) -> bytes:
    """RFC 4180 as the ``csv`` module writes it: CRLF line ends, minimal quoting, no BOM."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)  # dialect "excel": ',', '"', QUOTE_MINIMAL, "\r\n"
    writer.writerow(result.header)
    writer.writerows(result.rows)
    return buffer.getvalue().encode("utf-8")
