"""Budget periods: which calendar window a moment falls in, and its key.

Both sides need the same answer: the control plane keys budget totals and leases by
period, the sidecar knows when its leases roll over. Periods are calendar-aligned in
the budget's time zone (`day`, `week` from Monday, `month`), or `fixed`, one window
for the budget's whole life. Pure: reads no clock (the moment is passed in); must not
import gRPC, SQLAlchemy or the wire types.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

log = logging.getLogger(__name__)

FOREVER = (0, 2**63 - 1)
PERIODS = ("day", "week", "month", "fixed")


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("unknown time zone %r for a budget period; using UTC", name)
        return ZoneInfo("UTC")


def _start_of(day: date, tz: ZoneInfo) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=tz).timestamp() * 1000)


def _first_day(period: str, at_ms: int, tz: ZoneInfo) -> tuple[date, date]:
    today = datetime.fromtimestamp(at_ms / 1000, UTC).astimezone(tz).date()
    if period == "day":
        return today, today + timedelta(days=1)
    if period == "week":
        first = today - timedelta(days=today.weekday())
        return first, first + timedelta(days=7)
    first = today.replace(day=1)  # "month", the default
    return first, (first + timedelta(days=32)).replace(day=1)


def period_window(period: str, time_zone: str, at_ms: int) -> tuple[int, int]:
    """[start, end) in Unix ms of the `period` containing `at_ms`, in `time_zone`."""
    if period == "fixed":
        return FOREVER
    tz = zone(time_zone)
    first, following = _first_day(period, at_ms, tz)
    return _start_of(first, tz), _start_of(following, tz)


def period_key(period: str, time_zone: str, at_ms: int) -> str:
    """A stable name for the period containing `at_ms`: `2026-12`, `2026-12-04`,
    `2026-W49` (ISO week), or `fixed`."""
    if period == "fixed":
        return "fixed"
    first, _ = _first_day(period, at_ms, zone(time_zone))
    if period == "day":
        return first.isoformat()
    if period == "week":
        year, week, _ = first.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{first.year}-{first.month:02d}"
