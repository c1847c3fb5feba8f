"""Expiring leases that were neither refreshed nor closed: `LeaseSweeper`.

A sidecar refreshes each lease every `refresh_after_ms` and closes it in its usage
journal when done; a lease that has heard neither for its TTL plus a safety margin
(`--lease-expiry-margin`, default 10 minutes) belonged to a sidecar that is gone, and
its remainder returns to the budget. Never within that margin after this replica
started: after an outage, sidecars get that long to reconnect and refresh before
their leases are taken back (`controlplane.leases.expiry_cutoff`). Every replica
sweeps; the store's row locks make a lease expire once.

Must not import grpc, sqlalchemy or `faregate.v1`.
"""

from __future__ import annotations

import asyncio
import logging

from controlplane.clock import Clock
from controlplane.leases import DEFAULT_EXPIRY_MARGIN_MS, expiry_cutoff
from controlplane.metrics import ControlPlaneMetrics
from controlplane.store import Store

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 5.0


class LeaseSweeper:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        metrics: ControlPlaneMetrics,
        *,
        margin_ms: int = DEFAULT_EXPIRY_MARGIN_MS,
        interval: float = SWEEP_INTERVAL_S,
    ) -> None:
        self._store = store
        self._clock = clock
        self._metrics = metrics
        self._margin_ms = margin_ms
        self._interval = interval
        self._started_at_ms = clock.now_ms()

    async def sweep(self) -> int:
        """Expire what may be expired now; how many leases were."""
        now = self._clock.now_ms()
        cutoff = expiry_cutoff(now, self._started_at_ms, self._margin_ms)
        if cutoff is None:
            return 0
        expired = await asyncio.to_thread(self._store.expire_leases, cutoff, now)
        if expired:
            self._metrics.leases_expired.inc(expired)
            log.info("expired %d lease(s) not refreshed since before %d", expired, cutoff)
        return expired

    async def run(self) -> None:
        """Sweep until cancelled; a failing store is logged and retried, never fatal."""
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("could not expire leases; retrying")
            await asyncio.sleep(self._interval)
