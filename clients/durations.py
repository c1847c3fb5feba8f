"""Human durations for the CLI: `24h`, `90m`, `1d12h`, `all` <-> milliseconds, and
coarse relative times (`5m ago`, `in 2h`).

Pure text arithmetic: must not import gRPC, click, rich, the wire types or the servers.
"""

from __future__ import annotations

import re

_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_PART = re.compile(r"(\d+)([smhd])")
_WHOLE = re.compile(r"(?:\d+[smhd])+")
ALL_TIME = ("all", "all-time", "0")


class DurationError(ValueError):
    """Text that is not a duration such as `30s`, `15m`, `24h`, `7d` or `all`."""


def parse_window(text: str) -> int:
    """Milliseconds in a window such as `24h` or `1d12h`; `all` (all time) is 0."""
    cleaned = text.strip().lower().replace(" ", "")
    if cleaned in ALL_TIME:
        return 0
    if not _WHOLE.fullmatch(cleaned):
        raise DurationError(
            f"{text!r} is not a duration: use a number and a unit s, m, h or d "
            "(e.g. 30m, 24h, 7d, 1d12h), or 'all'"
        )
    total = sum(int(number) * _UNIT_MS[unit] for number, unit in _PART.findall(cleaned))
    if total == 0:
        raise DurationError(f"{text!r} is an empty window; use 'all' for all time")
    return total


def parse_duration(text: str) -> int:
    """Milliseconds in a positive duration such as `30m`, `1h` or `1d12h` (no `all`)."""
    cleaned = text.strip().lower().replace(" ", "")
    if not _WHOLE.fullmatch(cleaned):
        raise DurationError(
            f"{text!r} is not a duration: use a number and a unit s, m, h or d "
            "(e.g. 30m, 1h, 2d, 1h30m)"
        )
    total = sum(int(number) * _UNIT_MS[unit] for number, unit in _PART.findall(cleaned))
    if total == 0:
        raise DurationError(f"{text!r} is no time at all")
    return total


def format_in(remaining_ms: int) -> str:
    """A coarse `how long from now`: `in 59m`, `in 2h`, or `just now` once past."""
    if remaining_ms < 1_000:
        return "now"
    for unit in ("d", "h", "m", "s"):
        if remaining_ms >= _UNIT_MS[unit]:
            return f"in {remaining_ms // _UNIT_MS[unit]}{unit}"
    return "now"


def format_window(window_ms: int) -> str:
    """`24h`, `7d`, `1h30m`, `90s`; 0 is `all time`."""
    if window_ms <= 0:
        return "all time"
    parts = []
    remaining = window_ms
    # Under two days people think in hours ("last 24h", "last 36h"), not "1d12h".
    units = ("d", "h", "m", "s") if window_ms >= 2 * _UNIT_MS["d"] else ("h", "m", "s")
    for unit in units:
        count, remaining = divmod(remaining, _UNIT_MS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or f"{window_ms}ms"


def format_ago(elapsed_ms: int) -> str:
    """A coarse `how long ago`: `just now`, `12s ago`, `5m ago`, `3h ago`, `2d ago`."""
    if elapsed_ms < 1_000:
        return "just now"
    for unit in ("d", "h", "m", "s"):
        if elapsed_ms >= _UNIT_MS[unit]:
            return f"{elapsed_ms // _UNIT_MS[unit]}{unit} ago"
    return "just now"  # unreachable: 1s is the smallest unit and was checked above
