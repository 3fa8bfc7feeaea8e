"""Export requests: what is dead-lettered, every 400 of contract §3, and the window."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from shared.contracts.requests import DataType
from shared.domain.export.context import WorkspaceOptions
from shared.domain.export.request_validation import (
    ReadableRequest,
    Rejected,
    Unreadable,
    ValidRequest,
    check_workspace_options,
    read_request,
    validate_request,
)

NOW = datetime(2026, 11, 22, 19, 3, 12, 345_000, tzinfo=UTC)


def request(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "request_id": "0b6f7c1e-4f0a-4c57-9d36-5b1b2a8e4d11",
        "org_id": "ws-acme",
        "data_type": "users",
        "from": {"date": "2026-01-01", "timezone": "Europe/Berlin"},
        "to": {"date": "2026-01-31", "timezone": "Europe/Berlin"},
        "group_by": None,
        "requested_by": "user-42",
    }
    return base | changes


def validate(payload: dict[str, Any]) -> ValidRequest | Rejected:
    readable = read_request(orjson.dumps(payload), max_bytes=65536)
    assert isinstance(readable, ReadableRequest)
    return validate_request(readable, now=NOW)


def rejection(payload: dict[str, Any]) -> str:
    result = validate(payload)
    assert isinstance(result, Rejected), result
    assert result.status == 400
    return result.message


def test_the_contract_example_is_valid() -> None:
    result = validate(request())
    assert isinstance(result, ValidRequest)
    assert result.data_type is DataType.USERS
    assert result.window.date_range() == {
        "from": "2026-01-01T00:00:00.000+01:00",
        "to": "2026-01-31T23:59:59.999+01:00",
    }
    assert (result.window.period_start().isoformat(), result.window.period_end().isoformat()) == (
        "2026-01-01",
        "2026-01-31",
    )


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"not json", "invalid_json"),
        (b"[1, 2]", "invalid_request"),
        (b'"text"', "invalid_request"),
        (b'{"org_id": "ws"}', "invalid_request_id"),
        (b'{"request_id": "../x"}', "invalid_request_id"),
        (None, "empty_value"),
    ],
)
def test_unreadable_requests_are_dead_lettered(value: bytes | None, reason: str) -> None:
    result = read_request(value, max_bytes=65536)
    assert isinstance(result, Unreadable)
    assert result.reason == reason
    assert result.request_id is None


def test_request_id_is_recovered_from_broken_json() -> None:
    result = read_request(
        b'{"request_id": "req-7", "org_id": "ws-1", "from": {oops', max_bytes=65536
    )
    assert isinstance(result, Unreadable)
    assert (result.reason, result.request_id, result.org_id) == ("invalid_json", "req-7", "ws-1")
    bad_id = read_request(b'{"request_id": "a..b", broken', max_bytes=65536)
    assert isinstance(bad_id, Unreadable)
    assert bad_id.request_id is None


def test_oversized_requests_are_dead_lettered() -> None:
    result = read_request(b'{"request_id": "r1", "pad": "' + b"x" * 100 + b'"}', max_bytes=64)
    assert isinstance(result, Unreadable)
    assert (result.reason, result.request_id) == ("oversized", "r1")


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"org_id": "bad org"}, "org_id"),
        ({"org_id": None}, "org_id"),
        ({"data_type": "invoices"}, "data_type 'invoices' is unknown"),
        ({"data_type": None}, "data_type is required"),
        ({"data_type": "Users"}, "unknown"),
        ({"group_by": "source"}, "group_by 'source' is not available for users"),
        ({"group_by": ""}, "not available"),
        ({"group_by": 3}, "not available"),
        ({"data_type": "projects", "group_by": "model"}, "projects exports have no subgroups"),
        ({"data_type": "models", "group_by": "model"}, "'deployment' or 'source'"),
        ({"from": {"date": "2026-01-01", "timezone": "Mars/Olympus"}}, "from.timezone"),
        ({"to": {"date": "2026-01-31", "timezone": "posix/Europe/Berlin"}}, "to.timezone"),
        ({"from": {"date": "2026-02-30", "timezone": "UTC"}}, "not a valid calendar date"),
        ({"from": {"date": "yesterday", "timezone": "UTC"}}, "from.date"),
        ({"to": {"date": 20260131, "timezone": "UTC"}}, "'to.date' must be a string"),
        ({"to": "2026-01-31"}, "'to' must be an object"),
        ({"from": None}, "'from' must be an object"),
        ({"to": {"date": "2025-12-31", "timezone": "Europe/Berlin"}}, "'to' (2025-12-31"),
        ({"from": {"date": "2024-01-01", "timezone": "UTC"}}, "more than 12 months"),
        ({"from": {"date": "2025-11-21", "timezone": "UTC"}},
         "earliest allowed start is 2025-11-22"),
        ({"from": {"date": "2026-12-01", "timezone": "UTC"},
          "to": {"date": "2026-12-31", "timezone": "UTC"}},
         "'from' (2026-12-01 UTC) is in the future"),
    ],
)  # fmt: skip
def test_every_bad_request_gets_a_400_saying_what_to_fix(
    changes: dict[str, Any], fragment: str
) -> None:
    assert fragment in rejection(request(**changes))


def test_to_before_from_is_judged_before_rounding() -> None:
    # 10:07 to 10:03 in the same quarter hour: rounding would hide that 'to' < 'from'.
    message = rejection(
        request(
            **{
                "from": {"date": "2026-01-05T10:07:00", "timezone": "UTC"},
                "to": {"date": "2026-01-05T10:03:00", "timezone": "UTC"},
            }
        )
    )
    assert "before 'from'" in message


def test_twelve_months_back_is_accepted_all_day() -> None:
    result = validate(
        request(
            **{
                "from": {"date": "2025-11-22", "timezone": "UTC"},
                "to": {"date": "2025-11-30", "timezone": "UTC"},
            }
        )
    )
    assert isinstance(result, ValidRequest)


def test_to_in_the_future_is_clamped_to_now() -> None:
    result = validate(
        request(
            **{
                "from": {"date": "2026-11-01", "timezone": "Asia/Kolkata"},
                "to": {"date": "2027-01-31", "timezone": "Asia/Kolkata"},
            }
        )
    )
    assert isinstance(result, ValidRequest)
    # now is 19:03:12.345Z → the window ends at ceil15 = 19:15Z = 00:45+05:30 next day
    assert result.window.date_range()["to"] == "2026-11-23T00:44:59.999+05:30"
    assert result.window.period_end().isoformat() == "2026-11-23"


def test_offsets_in_dates_are_ignored_and_bounds_have_their_own_zones() -> None:
    result = validate(
        request(
            **{
                "from": {"date": "2026-01-01T00:00:00.000Z", "timezone": "Europe/Berlin"},
                "to": {"date": "2026-01-31", "timezone": "America/St_Johns"},
            }
        )
    )
    assert isinstance(result, ValidRequest)
    assert result.window.date_range() == {
        "from": "2026-01-01T00:00:00.000+01:00",
        "to": "2026-01-31T23:59:59.999-03:30",
    }


def test_missing_timezone_means_utc_and_agents_is_an_alias() -> None:
    result = validate(
        request(
            data_type="agents",
            group_by="model",
            **{"from": {"date": "2026-01-01"}, "to": {"date": "2026-01-31"}},
        )
    )
    assert isinstance(result, ValidRequest)
    assert result.data_type is DataType.ASSISTANTS
    assert result.window.date_range()["from"] == "2026-01-01T00:00:00.000Z"


def test_deployment_subgroups_need_a_byok_workspace() -> None:
    result = validate(request(data_type="models", group_by="deployment"))
    assert isinstance(result, ValidRequest)
    refused = check_workspace_options(result, WorkspaceOptions(byok=False))
    assert refused is not None
    assert "only available for BYOK workspaces" in refused.message
    assert check_workspace_options(result, WorkspaceOptions(byok=True)) is None


@pytest.mark.parametrize("zone", ["localtime", "Factory", "posixrules", "right/UTC"])
def test_zone_files_that_are_not_places_are_refused(zone: str) -> None:
    """``localtime`` would mean the exporter host's own zone and ``Factory`` is IANA's
    "unspecified" (-00): both are in ``available_timezones()``, neither is a place."""
    message = rejection(request(**{"to": {"date": "2026-01-31", "timezone": zone}}))
    assert f"'to.timezone' {zone!r} is not an IANA timezone name" in message


@pytest.mark.parametrize(
    ("text", "wall"),
    [
        ("2026-01-05T10:07", "2026-01-05T10:00:00.000+01:00"),  # a browser's datetime-local
        ("2026-01-05t10:07:00z", "2026-01-05T10:00:00.000+01:00"),
        ("2026-01-05T10:07:00.123456789-03:30", "2026-01-05T10:00:00.000+01:00"),
    ],
)
def test_date_times_rfc3339_allows_are_wall_times(text: str, wall: str) -> None:
    result = validate(request(**{"from": {"date": text, "timezone": "Europe/Berlin"}}))
    assert isinstance(result, ValidRequest)
    assert result.window.date_range()["from"] == wall


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-05T10:07:00+0530",  # an offset needs its colon
        "2026-01-05T10:07:00+05",
        "2026-01-05T10:07:00+00:60",
        "2026-01-05 10:07:00",  # a space is not "T"
        "2026-01-05X10:07:00",
        "2026-01-05T10",
        "2026-01-05T10:07:00,5",
        "20260105T100700",
        "2026-W02-1T10:07:00",
        " 2026-01-05",
        "2026-01-05\n",
    ],
)
def test_date_times_outside_the_contract_are_refused(text: str) -> None:
    message = rejection(request(**{"from": {"date": text, "timezone": "UTC"}}))
    assert message.startswith("'from.date': date ")
