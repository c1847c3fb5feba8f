"""Reconnect delays: exponential backoff with full jitter.

Attempt n waits a uniformly random time in [0, min(maximum, initial * 2**n)], so a
fleet of sidecars that lost the control plane together does not come back in
lockstep. `reset` after a session that got as far as Welcome. The random source is
injected so tests are deterministic. Must not import gRPC or the wire types.
"""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    def __init__(
        self,
        initial: float = 0.5,
        maximum: float = 30.0,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        if not 0 < initial <= maximum:
            raise ValueError("backoff needs 0 < initial <= maximum")
        self._initial = initial
        self._maximum = maximum
        self._uniform = uniform
        self._attempt = 0

    def ceiling(self) -> float:
        """The longest the next delay may be."""
        # Capping the shift keeps 2**attempt from growing without bound.
        return min(self._maximum, self._initial * (1 << min(self._attempt, 32)))

    def next_delay(self) -> float:
        delay = self._uniform(0.0, self.ceiling())
        self._attempt += 1
        return delay

    def reset(self) -> None:
        self._attempt = 0
