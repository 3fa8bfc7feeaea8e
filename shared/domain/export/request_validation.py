"""Export requests (contract §3): raw bytes → a readable request → a validated request.

Two stages, because they fail differently:

* :func:`read_request` — is this a request at all? Not JSON, not an object, or no valid
  ``request_id`` goes to the dead-letter topic (:class:`Unreadable`); a ``request_id``
  found by a regex in unparseable bytes still gets its 400 completion.
* :func:`validate_request` — is it a request we can answer? Every contract 400 case,
  with a message that tells the caller what to fix (:class:`Rejected`).

Decisions where the contract is silent:

* A missing ``timezone`` means ``UTC``; a timezone must be an IANA name of a place
  (``shared.domain.timezones``: ``zoneinfo.available_timezones()`` less ``localtime``,
  ``Factory``, ``posix/…`` and ``right/…``; file paths are refused).
* A ``date`` is ``YYYY-MM-DD`` or ``YYYY-MM-DDThh:mm[:ss[.fff]]`` with an optional ``Z``
  or ``±hh:mm`` that is ignored (``shared.domain.window.parse_wall_time``).
* ``to`` before ``from`` and ``from`` in the future are judged on the instants as given,
  before quarter-hour rounding; the 12-month rule compares local dates (``from``'s date
  must not precede today, in ``from``'s zone, minus 12 calendar months).
* ``requested_by`` is informational: anything there is accepted and ignored.
* ``data_type`` also accepts ``api-keys`` (the file-name kind) besides the contract's names.
* ``group_by: ""`` is not null: it is an unknown subgroup (400).
* ``format`` null or absent is ``csv``; ``bucket`` null or absent is no buckets.
* ``callback_url`` null or absent is no webhook; a string is checked here for its type
  only: its shape and where its host resolves need settings and DNS, so the exporter
  and the API vet it next (``shared.adapters.callback_vetting``).
* ``destination`` null or absent is none; a name of another shape is refused here, a
  name the exporter has not configured by :func:`check_destination`.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from shared import codec
from shared.contracts.destinations import DESTINATION_RULE, is_destination_name
from shared.contracts.export_buckets import BUCKET_NAMES, BucketUnit
from shared.contracts.export_formats import FORMAT_NAMES, ExportFormat
from shared.contracts.export_types import DataType, spec
from shared.contracts.ids import ID_RULE, is_valid_id
from shared.domain.buckets import Bucket, buckets
from shared.domain.export.context import WorkspaceOptions
from shared.domain.timezones import is_accepted_zone
from shared.domain.window import (
    Window,
    WindowError,
    bound_ms,
    parse_wall_time,
    resolve_window,
    to_ms,
)

_REQUEST_ID_BYTES = re.compile(rb'"request_id"\s*:\s*"([A-Za-z0-9][A-Za-z0-9_.:-]{0,127})"')
_ORG_ID_BYTES = re.compile(rb'"org_id"\s*:\s*"([A-Za-z0-9][A-Za-z0-9_.:-]{0,127})"')
_TYPES = "users, assistants (alias agents), api_keys, projects, models"
_BOUND_EXAMPLE = '{"date": "2026-01-31", "timezone": "Europe/Berlin"}'


class _Invalid(ValueError):
    """A field the contract refuses; the message is the completion's."""


@dataclass(frozen=True, slots=True)
class Unreadable:
    """Not a request: dead-letter it (and answer 400 if a ``request_id`` was found)."""

    reason: str
    detail: str
    request_id: str | None = None
    org_id: str | None = None

    @property
    def header(self) -> str:
        return f"{self.reason}: {self.detail}"


@dataclass(frozen=True, slots=True)
class ReadableRequest:
    """A JSON object with a valid ``request_id``: it gets a completion, whatever else."""

    request_id: str
    org_id: str | None  # None unless valid: only valid ids ever reach an object key
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Rejected:
    """A request the contract refuses with 400; ``message`` says what to fix."""

    message: str
    status: int = 400


@dataclass(frozen=True, slots=True)
class ValidRequest:
    request_id: str
    org_id: str
    data_type: DataType
    group_by: str | None
    window: Window
    format: ExportFormat = ExportFormat.CSV
    bucket: BucketUnit | None = None
    #: The window's buckets (``shared.domain.buckets``); empty when ``bucket`` is None.
    buckets: tuple[Bucket, ...] = ()
    #: Not vetted yet (see the module's docstring).
    callback_url: str | None = None
    #: Where the file is copied to (a configured destination's name), or None.
    destination: str | None = None


def _found(pattern: re.Pattern[bytes], value: bytes) -> str | None:
    match = pattern.search(value)
    if match is None:
        return None
    text = match.group(1).decode("ascii")
    return text if is_valid_id(text) else None


def _unreadable(reason: str, detail: str, value: bytes) -> Unreadable:
    return Unreadable(
        reason, detail, _found(_REQUEST_ID_BYTES, value), _found(_ORG_ID_BYTES, value)
    )


def read_request(value: bytes | None, *, max_bytes: int) -> ReadableRequest | Unreadable:
    """The request object of a Kafka record value, or why it is not one."""
    if value is None:
        return Unreadable("empty_value", "the record has no value")
    if len(value) > max_bytes:
        return _unreadable(
            "oversized", f"value of {len(value)} bytes exceeds {max_bytes}", value[:max_bytes]
        )
    try:
        payload = codec.loads(value)
    except codec.JSONDecodeError as exc:
        return _unreadable("invalid_json", f"not valid UTF-8 JSON: {exc}", value)
    if not isinstance(payload, dict):
        return _unreadable("invalid_request", "the value must be a JSON object", value)
    request_id = payload.get("request_id")
    if not isinstance(request_id, str) or not is_valid_id(request_id):
        return Unreadable(
            "invalid_request_id", f"request_id {request_id!r} is missing or not {ID_RULE}"
        )
    org_id = payload.get("org_id")
    return ReadableRequest(
        request_id=request_id, payload=payload, org_id=org_id if is_valid_id(org_id) else None
    )


def _zone(name: str, bound: dict[str, Any]) -> ZoneInfo:
    value = bound.get("timezone")
    if value is None:
        return ZoneInfo("UTC")
    if not isinstance(value, str) or not is_accepted_zone(value):
        raise WindowError(
            f"'{name}.timezone' {value!r} is not an IANA timezone name "
            f"(e.g. Europe/Berlin, Asia/Kolkata, UTC)"
        )
    return ZoneInfo(value)


def _bound(name: str, payload: dict[str, Any]) -> tuple[str, ZoneInfo]:
    bound = payload.get(name)
    if not isinstance(bound, dict):
        raise WindowError(f"'{name}' must be an object like {_BOUND_EXAMPLE}")
    text = bound.get("date")
    if not isinstance(text, str):
        raise WindowError(
            f"'{name}.date' must be a string: YYYY-MM-DD or a date-time such as 2026-01-31T18:00:00"
        )
    zone = _zone(name, bound)
    try:
        parse_wall_time(text)
    except WindowError as exc:
        raise WindowError(f"'{name}.date': {exc}") from None
    return text, zone


def _data_type(payload: dict[str, Any]) -> DataType:
    value = payload.get("data_type")
    if not isinstance(value, str):
        raise _Invalid(f"data_type is required: one of {_TYPES}")
    try:
        return DataType.parse(value)
    except ValueError:
        raise _Invalid(f"data_type {value!r} is unknown: use one of {_TYPES}") from None


def _group_by(payload: dict[str, Any], data_type: DataType) -> str | None:
    value = payload.get("group_by")
    if value is None:
        return None
    allowed = sorted(spec(data_type).group_by)
    if not allowed:
        raise _Invalid(
            f"group_by {value!r} is not available for {data_type.value}: "
            f"{data_type.value} exports have no subgroups, use null"
        )
    if not isinstance(value, str) or value not in allowed:
        raise _Invalid(
            f"group_by {value!r} is not available for {data_type.value}: "
            f"use {' or '.join(map(repr, allowed))}, or null for no grouping"
        )
    return value


def _choice(payload: dict[str, Any], field: str, names: tuple[str, ...], alone: str) -> str | None:
    """An optional field naming one of ``names`` (None when absent or null)."""
    value = payload.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or value not in names:
        raise _Invalid(f"{field} {value!r} is unknown: use one of {', '.join(names)}{alone}")
    return value


def _format(payload: dict[str, Any]) -> ExportFormat:
    return ExportFormat(_choice(payload, "format", FORMAT_NAMES, "") or ExportFormat.CSV)


def _bucket(payload: dict[str, Any]) -> BucketUnit | None:
    unit = _choice(payload, "bucket", BUCKET_NAMES, ", or null")
    return None if unit is None else BucketUnit(unit)


def _callback_url(payload: dict[str, Any]) -> str | None:
    value = payload.get("callback_url")
    if value is None or isinstance(value, str):
        return value
    raise _Invalid(f"callback_url must be an https URL string or null, not {type(value).__name__}")


def _destination(payload: dict[str, Any]) -> str | None:
    value = payload.get("destination")
    if value is None:
        return None
    if not is_destination_name(value):
        raise _Invalid(f"destination {value!r} is not a destination name: {DESTINATION_RULE}")
    return str(value)


def _window(payload: dict[str, Any], now: datetime) -> Window:
    from_text, from_zone = _bound("from", payload)
    to_text, to_zone = _bound("to", payload)
    raw_from = bound_ms(parse_wall_time(from_text), from_zone, end=False)
    raw_to = bound_ms(parse_wall_time(to_text), to_zone, end=True)
    if raw_to < raw_from:
        raise WindowError(
            f"'to' ({to_text} {to_zone.key}) is before 'from' "
            f"({from_text} {from_zone.key}): the window would be empty"
        )
    if raw_from > to_ms(now):
        raise WindowError(
            f"'from' ({from_text} {from_zone.key}) is in the future: there is no data to export yet"
        )
    return resolve_window(from_text, from_zone.key, to_text, to_zone.key, now=now)


def validate_request(request: ReadableRequest, *, now: datetime) -> ValidRequest | Rejected:
    """Every check that needs no stored data; ``now`` clamps ``to`` and bounds ``from``."""
    payload = request.payload
    org_id = payload.get("org_id")
    if request.org_id is None:
        return Rejected(f"org_id {org_id!r} is missing or not a valid id: must be {ID_RULE}")
    try:
        data_type = _data_type(payload)
        group_by = _group_by(payload, data_type)
        export_format = _format(payload)
        bucket = _bucket(payload)
        callback_url = _callback_url(payload)
        destination = _destination(payload)
        window = _window(payload, now)
        cut = () if bucket is None else tuple(buckets(window, bucket))
    except (_Invalid, WindowError) as exc:
        return Rejected(str(exc))
    return ValidRequest(
        request_id=request.request_id,
        org_id=request.org_id,
        data_type=data_type,
        group_by=group_by,
        window=window,
        format=export_format,
        bucket=bucket,
        buckets=cut,
        callback_url=callback_url,
        destination=destination,
    )


def check_workspace_options(request: ValidRequest, options: WorkspaceOptions) -> Rejected | None:
    """The one 400 that depends on stored data: ``deployment`` needs a BYOK workspace."""
    if request.group_by == "deployment" and not options.byok:
        return Rejected(
            "group_by 'deployment' is only available for BYOK workspaces: "
            f"workspace {request.org_id} does not use its own keys; "
            "use 'source' or null"
        )
    return None


def check_destination(request: ValidRequest, configured: Collection[str]) -> Rejected | None:
    """The 400 of a destination this exporter has not configured (``USAGE_DESTINATION_*``)."""
    if request.destination is None or request.destination in configured:
        return None
    known = ", ".join(sorted(configured)) or "none are configured"
    return Rejected(
        f"destination {request.destination!r} is not configured on the exporter "
        f"(USAGE_DESTINATION_{request.destination.upper()}_BUCKET and the rest); known: {known}"
    )
