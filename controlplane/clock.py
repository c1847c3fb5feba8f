"""Time as the control plane's logic sees it: an injected `Clock`.

Services and the watcher take a `Clock` so tests can pin time; only `main` builds
`SystemClock`. Must not import grpc, sqlalchemy or `faregate.v1`.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Wall-clock Unix time in milliseconds (what is recorded and compared)."""
        ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class FixedClock:
    """A clock that moves only when told to (tests, simulations)."""

    def __init__(self, now_ms: int = 0) -> None:
        self.now = now_ms

    def now_ms(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms
