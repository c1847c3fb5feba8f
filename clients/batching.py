"""Background delivery of usage reports in batches, for threads and for asyncio.

A model call should not pay a second blocking round trip to report its usage, so
reports are queued and shipped together: when `max_batch` are waiting, or
`interval` after the oldest was queued, or at once when a caller waits for its
result or flushes. Report is idempotent per decision id (a repeat is answered
`duplicate=true`), so a failed send is retried with backoff; once retries run out
the reports are logged by name, never dropped silently.

The batchers are generic over the item and result types and only call the `send`
function they are given: they must not import gRPC, the wire types or the servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

from clients.errors import FaregateError, is_transient

T = TypeVar("T")
R = TypeVar("R")

logger = logging.getLogger("faregate.clients")


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    max_batch: int = 100
    interval: float = 0.05  # seconds a queued report may wait for company
    retry_delays: tuple[float, ...] = (0.05, 0.25, 1.0)

    def retry_delay(self, error: BaseException, attempt: int) -> float | None:
        """Seconds before the next attempt, or None when it is time to give up."""
        if not is_transient(error) or attempt >= len(self.retry_delays):
            return None
        return self.retry_delays[attempt]


@dataclass(slots=True)
class _Pending(Generic[T, R]):
    item: T
    future: Future[R] | asyncio.Future[R] | None


class _Queue(Generic[T, R]):
    """The bookkeeping both batchers share; callers hold their own lock around it."""

    def __init__(self, policy: BatchPolicy) -> None:
        self.policy = policy
        self.items: list[_Pending[T, R]] = []
        self.oldest_at = 0.0
        self.submitted = 0
        self.done = 0
        self.urgent_until = 0  # ship without waiting until `done` reaches this
        self.closing = False

    def add(self, pending: _Pending[T, R], *, urgent: bool) -> bool:
        """Queue one item; True when the shipper should wake up now."""
        if self.closing:
            raise FaregateError("the client is closed; no more reports can be queued")
        first = not self.items
        if first:
            self.oldest_at = time.monotonic()
        self.items.append(pending)
        self.submitted += 1
        if urgent:
            self.urgent_until = self.submitted
        # The first item must wake the idle shipper so that it starts the interval clock.
        return first or urgent or len(self.items) >= self.policy.max_batch

    def hurry(self) -> int:
        """Ship everything queued so far without waiting; returns the count to wait for."""
        self.urgent_until = max(self.urgent_until, self.submitted)
        return self.submitted

    def due_in(self) -> float | None:
        """0 when a batch is due, seconds until one is, or None if the queue is empty."""
        if not self.items:
            return None
        if self.closing or self.done < self.urgent_until:
            return 0.0
        if len(self.items) >= self.policy.max_batch:
            return 0.0
        return max(0.0, self.oldest_at + self.policy.interval - time.monotonic())

    def take(self) -> list[_Pending[T, R]]:
        batch = self.items[: self.policy.max_batch]
        del self.items[: self.policy.max_batch]
        self.oldest_at = time.monotonic()
        return batch


def _give_up(
    batch: Sequence[_Pending[T, R]],
    error: BaseException,
    attempts: int,
    describe: Callable[[T], str],
) -> None:
    names = [describe(p.item) for p in batch]
    logger.error(
        "faregate: %d usage report(s) not delivered after %d attempt(s): %s; %s",
        len(batch),
        attempts,
        error,
        ", ".join(names[:20]) + (" ..." if len(names) > 20 else ""),
    )
    for p in batch:
        if p.future is not None and not p.future.done():
            p.future.set_exception(error)


def _deliver(batch: Sequence[_Pending[T, R]], results: Sequence[R]) -> None:
    for p, result in zip(batch, results, strict=True):
        if p.future is not None and not p.future.done():
            p.future.set_result(result)


class ReportBatcher(Generic[T, R]):
    """Ships items from a daemon thread; `submit(wait=True)` blocks for that item's result."""

    def __init__(
        self,
        send: Callable[[Sequence[T]], Sequence[R]],
        policy: BatchPolicy | None = None,
        *,
        describe: Callable[[T], str] = repr,
        name: str = "faregate-reports",
    ) -> None:
        self._send = send
        self._describe = describe
        self._queue: _Queue[T, R] = _Queue(policy or BatchPolicy())
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: T, *, wait: bool = False, timeout: float | None = None) -> R | None:
        future: Future[R] | None = Future() if wait else None
        with self._cond:
            if self._queue.add(_Pending(item, future), urgent=wait):
                self._cond.notify_all()
        return None if future is None else future.result(timeout)

    def flush(self, timeout: float | None = None) -> bool:
        """Ship everything queued so far; True once it all went out (or failed and was logged)."""
        with self._cond:
            target = self._queue.hurry()
            self._cond.notify_all()
            return self._cond.wait_for(lambda: self._queue.done >= target, timeout)

    def close(self, timeout: float | None = 5.0) -> None:
        """Ship what is queued, then stop the thread. Idempotent."""
        with self._cond:
            self._queue.closing = True
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if self._thread.is_alive():
            logger.warning(
                "faregate: closed with %d usage report(s) still unsent", len(self._queue.items)
            )

    def _take(self) -> list[_Pending[T, R]] | None:
        """Block until a batch is due; None once closing and drained."""
        with self._cond:
            while (wait := self._queue.due_in()) != 0.0:
                if wait is None and self._queue.closing:
                    return None
                self._cond.wait(wait)
            return self._queue.take()

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            self._ship(batch)
            with self._cond:
                self._queue.done += len(batch)
                self._cond.notify_all()

    def _ship(self, batch: list[_Pending[T, R]]) -> None:
        items = [p.item for p in batch]
        for attempt in range(len(self._queue.policy.retry_delays) + 1):
            try:
                results = self._send(items)
            except Exception as error:  # every failure ends in a retry or a log line
                delay = self._queue.policy.retry_delay(error, attempt)
                if delay is None:
                    _give_up(batch, error, attempt + 1, self._describe)
                    return
                logger.warning("faregate: report batch failed (%s); retrying", error)
                time.sleep(delay)
            else:
                _deliver(batch, results)
                return


class AsyncReportBatcher(Generic[T, R]):
    """The asyncio twin: ships from one task, started on the first `submit`."""

    def __init__(
        self,
        send: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        policy: BatchPolicy | None = None,
        *,
        describe: Callable[[T], str] = repr,
    ) -> None:
        self._send = send
        self._describe = describe
        self._queue: _Queue[T, R] = _Queue(policy or BatchPolicy())
        self._cond: asyncio.Condition | None = None
        self._task: asyncio.Task[None] | None = None

    def _started(self) -> asyncio.Condition:
        # Created lazily so that the batcher binds to the loop that first uses it.
        if self._cond is None:
            self._cond = asyncio.Condition()
            self._task = asyncio.get_running_loop().create_task(
                self._run(self._cond), name="faregate-reports"
            )
        return self._cond

    async def submit(self, item: T, *, wait: bool = False) -> R | None:
        cond = self._started()
        future: asyncio.Future[R] | None = (
            asyncio.get_running_loop().create_future() if wait else None
        )
        async with cond:
            if self._queue.add(_Pending(item, future), urgent=wait):
                cond.notify_all()
        return None if future is None else await future

    async def flush(self) -> None:
        if self._cond is None:
            return
        async with self._cond:
            target = self._queue.hurry()
            self._cond.notify_all()
            await self._cond.wait_for(lambda: self._queue.done >= target)

    async def close(self) -> None:
        """Ship what is queued, then stop the task. Idempotent."""
        self._queue.closing = True
        if self._cond is None or self._task is None:
            return
        async with self._cond:
            self._cond.notify_all()
        await self._task

    async def _take(self, cond: asyncio.Condition) -> list[_Pending[T, R]] | None:
        async with cond:
            while (wait := self._queue.due_in()) != 0.0:
                if wait is None and self._queue.closing:
                    return None
                with contextlib.suppress(TimeoutError):  # a due batch, or a wake-up
                    await asyncio.wait_for(cond.wait(), wait)
            return self._queue.take()

    async def _run(self, cond: asyncio.Condition) -> None:
        while (batch := await self._take(cond)) is not None:
            await self._ship(batch)
            async with cond:
                self._queue.done += len(batch)
                cond.notify_all()

    async def _ship(self, batch: list[_Pending[T, R]]) -> None:
        items = [p.item for p in batch]
        for attempt in range(len(self._queue.policy.retry_delays) + 1):
            try:
                results = await self._send(items)
            except Exception as error:  # every failure ends in a retry or a log line
                delay = self._queue.policy.retry_delay(error, attempt)
                if delay is None:
                    _give_up(batch, error, attempt + 1, self._describe)
                    return
                logger.warning("faregate: report batch failed (%s); retrying", error)
                await asyncio.sleep(delay)
            else:
                _deliver(batch, results)
                return
