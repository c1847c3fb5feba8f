"""Where the Sync service gets the current snapshot: one small interface and its watcher.

`SnapshotSource` is all the Sync service knows about configuration: the current
snapshot and a way to wait until it changes. `RevisionWatcher` implements it over
the store: it polls the latest revision every `poll_interval` seconds, so a revision
applied through another replica reaches this replica's streams, and can be poked to
look at once after a local apply. Only a changed version loads the full snapshot.

Must not import grpc, sqlalchemy or `faregate.v1`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from controlplane.store import Store
from faregate.model import Snapshot

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.5


class SnapshotSource(Protocol):
    def current(self) -> Snapshot | None:
        """The snapshot sidecars should run (None before any configuration)."""
        ...

    async def wait_for_change(self, version: str) -> None:
        """Return once the current version differs from `version` ("" = none)."""
        ...


class RevisionWatcher:
    """`SnapshotSource` that follows the store's latest revision."""

    def __init__(self, store: Store, poll_interval: float = POLL_INTERVAL_S) -> None:
        self._store = store
        self._poll_interval = poll_interval
        self._current: Snapshot | None = None
        self._changed = asyncio.Event()
        self._poked = asyncio.Event()
        self._refresh_lock = asyncio.Lock()

    def current(self) -> Snapshot | None:
        return self._current

    def _version(self) -> str:
        return self._current.version if self._current is not None else ""

    async def wait_for_change(self, version: str) -> None:
        while self._version() == version:
            # Each change sets the event it replaces, waking every waiter once.
            await self._changed.wait()

    def poke(self) -> None:
        """Look at the store now rather than at the next poll."""
        self._poked.set()

    async def refresh(self) -> bool:
        """Read the latest revision; True if the current snapshot changed."""
        async with self._refresh_lock:
            latest = await asyncio.to_thread(self._store.latest_revision)
            if latest is None or latest.snapshot_version == self._version():
                return False
            snapshot = await asyncio.to_thread(self._store.get_snapshot, latest.revision)
            if snapshot is None:
                return False
            self._current = snapshot
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()
            log.info("current snapshot %s (revision %d)", snapshot.version, snapshot.revision)
            return True

    async def run(self) -> None:
        """Poll until cancelled; a failing store is logged and retried, never fatal."""
        while True:
            try:
                await self.refresh()
            except Exception:
                log.exception("could not read the latest revision; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poked.wait(), timeout=self._poll_interval)
            self._poked.clear()
