"""Period keys name the calendar window a moment falls in, in the budget's zone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from faregate.periods import period_key, period_window


def ms(text: str, zone: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp() * 1000)


@pytest.mark.parametrize(
    ("period", "zone", "at", "key"),
    [
        ("month", "UTC", "2026-12-31T23:59:59", "2026-12"),
        ("month", "UTC", "2027-01-01T00:00:00", "2027-01"),
        # 23:30 in New York on Nov 30 is already December in UTC.
        ("month", "America/New_York", "2026-11-30T23:30:00", "2026-11"),
        ("day", "Europe/Paris", "2026-12-04T00:10:00", "2026-12-04"),
        ("week", "UTC", "2026-12-06T12:00:00", "2026-W49"),  # a Sunday
        ("week", "UTC", "2026-12-07T00:00:00", "2026-W50"),  # the next Monday
        ("fixed", "UTC", "2026-12-04T00:00:00", "fixed"),
    ],
)
def test_period_key(period: str, zone: str, at: str, key: str) -> None:
    assert period_key(period, zone, ms(at, zone)) == key


def test_key_and_window_agree_at_the_boundary() -> None:
    start, end = period_window("month", "UTC", ms("2026-12-15T00:00:00", "UTC"))
    assert period_key("month", "UTC", end - 1) == "2026-12"
    assert period_key("month", "UTC", end) == "2027-01"
    assert period_key("month", "UTC", start) == "2026-12"


@pytest.mark.parametrize(
    ("period", "at", "start", "end"),
    [
        ("day", "2027-01-15T10:30:00", "2027-01-15T00:00:00", "2027-01-16T00:00:00"),
        ("week", "2027-01-15T10:30:00", "2027-01-11T00:00:00", "2027-01-18T00:00:00"),
        ("month", "2027-01-15T10:30:00", "2027-01-01T00:00:00", "2027-02-01T00:00:00"),
        ("month", "2027-12-31T23:59:00", "2027-12-01T00:00:00", "2028-01-01T00:00:00"),
        # Across the spring DST change the local day is 23 hours long.
        ("day", "2027-03-14T12:00:00", "2027-03-14T00:00:00", "2027-03-15T00:00:00"),
    ],
)
def test_periods_are_calendar_aligned_in_the_time_zone(
    period: str, at: str, start: str, end: str
) -> None:
    zone = "America/New_York"
    assert period_window(period, zone, ms(at, zone)) == (ms(start, zone), ms(end, zone))
