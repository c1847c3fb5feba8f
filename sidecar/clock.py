"""Where the sidecar's notion of "now" comes from.

Everything that needs time takes a `Clock`, so the pure core and its tests never
read the real clock. Two scales: `now_ms` is wall-clock time (what records say,
which calendar period a budget is in); `monotonic_ms` never jumps, so lease TTLs
and report deadlines are measured on it "whatever the wall clocks say".
`SystemClock` is the one real implementation; `main` wires it. Must not import
gRPC or the wire types.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch."""
        ...

    def monotonic_ms(self) -> int:
        """Milliseconds on a clock that never goes back (its origin means nothing)."""
        ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic_ms(self) -> int:
        return time.monotonic_ns() // 1_000_000
