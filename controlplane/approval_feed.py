"""How decisions reach every replica's sidecars: `ApprovalFeed` and its watcher.

An operator decides through one replica, but the sidecar that will serve the retry
may be connected to any other. So each replica polls the store for approvals changed
since its last look (every `poll_interval`, like revisions) and is poked at once
after a local decision; every closed approval it finds (approved, denied, expired)
goes to its listeners, the Sync service's streams. Pending lapses are written on the
way, so a sidecar also hears that a request expired.

Change times come from each replica's own clock, so the poll looks back `OVERLAP_MS`
past the newest change it has seen and forgets nothing it has announced within that
window: a replica whose clock runs a little behind another's is still heard, and a
change is announced once.

Must not import grpc, sqlalchemy or `faregate.v1`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

from controlplane.approvals import Approval, ApprovalState
from controlplane.clock import Clock
from controlplane.store import Store

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.5
OVERLAP_MS = 10_000

Listener = Callable[[Approval], None]


class ApprovalFeed(Protocol):
    def subscribe(self, listener: Listener) -> None:
        """Call `listener` (on the event loop) with every approval once it is closed."""
        ...


class ApprovalWatcher:
    """`ApprovalFeed` that polls the store."""

    def __init__(self, store: Store, clock: Clock, poll_interval: float = POLL_INTERVAL_S) -> None:
        self._store = store
        self._clock = clock
        self._poll_interval = poll_interval
        self._listeners: list[Listener] = []
        # Decisions made before this replica started were replayed to each sidecar on
        # connect; only what changes from now on needs announcing.
        self._cursor_ms = clock.now_ms()
        self._announced: dict[tuple[str, ApprovalState], int] = {}  # -> updated_at_ms
        self._poked = asyncio.Event()
        self._lock = asyncio.Lock()

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def poke(self) -> None:
        """Look at the store now rather than at the next poll."""
        self._poked.set()

    async def refresh(self) -> int:
        """Expire lapsed requests and announce what closed; returns how many were new."""
        async with self._lock:
            now = self._clock.now_ms()
            await asyncio.to_thread(self._store.expire_approvals, now)
            changed = await asyncio.to_thread(
                self._store.approvals_changed_since, self._cursor_ms - OVERLAP_MS
            )
            fresh = 0
            for approval in changed:
                self._cursor_ms = max(self._cursor_ms, approval.updated_at_ms)
                key = (approval.approval_id, approval.state)
                if approval.state is ApprovalState.PENDING or key in self._announced:
                    continue
                self._announced[key] = approval.updated_at_ms
                fresh += 1
                for listener in self._listeners:
                    listener(approval)
            horizon = self._cursor_ms - OVERLAP_MS
            self._announced = {k: t for k, t in self._announced.items() if t > horizon}
            return fresh

    async def run(self) -> None:
        """Poll until cancelled; a failing store is logged and retried, never fatal."""
        while True:
            try:
                await self.refresh()
            except Exception:
                log.exception("could not read approvals; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poked.wait(), timeout=self._poll_interval)
            self._poked.clear()
