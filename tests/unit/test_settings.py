"""The settings model refuses combinations that would break exactness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.ingest.validation import AcceptedRange
from shared.domain.window import day_start_ms, to_ms
from shared.settings import INGEST_ACCEPTANCE_DAYS, Settings


def test_acceptance_days_cover_the_longest_twelve_months_plus_one_day() -> None:
    # Ingest's oldest accepted day, in days before today, for every day of a leap cycle:
    # the janitor must keep at least that many days.
    day_ms = 24 * 3600 * 1000
    start = datetime(2027, 1, 1, 12, tzinfo=UTC)
    reaches = set()
    for n in range(4 * 366):
        now = start + timedelta(days=n)
        oldest = AcceptedRange.at(now).oldest_ms
        reaches.add((day_start_ms(now.date()) - oldest) // day_ms)
        assert oldest < to_ms(now)
    assert max(reaches) == INGEST_ACCEPTANCE_DAYS == 367
    assert min(reaches) == 366  # a year without 29 February, + 1 day


def test_defaults_keep_more_than_the_acceptance_window() -> None:
    settings = Settings()
    assert settings.retention_days + settings.retention_margin_days >= INGEST_ACCEPTANCE_DAYS


@pytest.mark.parametrize(("days", "margin"), [(367, 0), (336, 31), (1, 366)])
def test_retention_plus_margin_of_367_days_is_accepted(days: int, margin: int) -> None:
    settings = Settings(retention_days=days, retention_margin_days=margin)
    assert settings.retention_days + settings.retention_margin_days == 367


@pytest.mark.parametrize(("days", "margin"), [(366, 0), (335, 31), (30, 7)])
def test_retention_shorter_than_the_acceptance_window_is_refused(days: int, margin: int) -> None:
    with pytest.raises(ValidationError, match=r"must be at least 367.*counted twice"):
        Settings(retention_days=days, retention_margin_days=margin)


def test_the_refusal_applies_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USAGE_RETENTION_DAYS", "300")
    monkeypatch.setenv("USAGE_RETENTION_MARGIN_DAYS", "31")
    with pytest.raises(ValidationError, match="USAGE_RETENTION_DAYS"):
        Settings()
