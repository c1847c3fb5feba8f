"""Group commit: one fsync for every journal entry appended before it, off the event loop.

A Report RPC appends its records and awaits `commit()`; it returns once an fsync
that started after those appends has finished. At most one fsync runs at a time,
on a worker thread, so Route keeps being answered meanwhile; every Report that
arrives while one runs is covered by the next, which they all share. Each fsync's
duration is handed to `observe` (the metrics histogram). If a sync fails, every
caller waiting on it gets its error (`journal.JournalUnavailable`): nothing they
appended is durable yet, and the next `commit()` tries again.

An adapter over `journal.UsageJournal.sync` (blocking I/O); no gRPC.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol


class Syncable(Protocol):
    def sync(self) -> None: ...

    def durable_through(self) -> tuple[int, int]: ...


class GroupCommit:
    def __init__(self, journal: Syncable, observe: Callable[[float], None] | None = None) -> None:
        self._journal = journal
        self._observe = observe
        self._running: asyncio.Future[None] | None = None

    async def commit(self) -> None:
        """Return once everything appended before this call is on disk."""
        target, durable = self._journal.durable_through()
        while durable < target:
            if self._running is None:
                self._running = asyncio.ensure_future(self._sync())
            # Shielded: one caller giving up must not cancel the fsync others wait on.
            await asyncio.shield(self._running)
            # Only what was appended before this call matters, not what came since.
            _, durable = self._journal.durable_through()

    async def _sync(self) -> None:
        started = time.perf_counter()
        try:
            await asyncio.get_running_loop().run_in_executor(None, self._journal.sync)
        finally:
            self._running = None
        if self._observe is not None:
            self._observe(time.perf_counter() - started)
