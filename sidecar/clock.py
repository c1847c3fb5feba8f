"""Where the sidecar's notion of "now" comes from.

Everything that needs wall-clock time takes a `Clock`, so the pure core and its
tests never read the real clock. `SystemClock` is the one real implementation;
`main` wires it. Must not import gRPC or the wire types.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch."""
        ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000
