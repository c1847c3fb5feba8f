"""clients.batching: when batches ship, retries, and the log line when reports are dropped.

The senders are plain functions; no sockets are involved.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence

import grpc
import pytest

from clients.batching import AsyncReportBatcher, BatchPolicy, ReportBatcher
from clients.errors import FaregateError, error_for

NEVER = 3600.0  # an interval that never elapses within a test
NO_WAIT = BatchPolicy(retry_delays=(0.0, 0.0))


class Recorder:
    """A sender that records batches and can fail its first calls."""

    def __init__(self, failures: Sequence[FaregateError] = ()) -> None:
        self.batches: list[list[str]] = []
        self.failures = list(failures)
        self.shipped = threading.Event()

    def __call__(self, items: Sequence[str]) -> list[str]:
        if self.failures:
            raise self.failures.pop(0)
        self.batches.append(list(items))
        self.shipped.set()
        return [f"ok:{item}" for item in items]


def test_full_batches_ship_at_once_and_the_rest_on_close() -> None:
    send = Recorder()
    batcher = ReportBatcher(send, BatchPolicy(max_batch=100, interval=NEVER))
    for n in range(250):
        batcher.submit(f"r{n}")
    batcher.close()
    assert [len(batch) for batch in send.batches] == [100, 100, 50]
    assert [item for batch in send.batches for item in batch] == [f"r{n}" for n in range(250)]


def test_a_lone_report_ships_after_the_interval() -> None:
    send = Recorder()
    batcher = ReportBatcher(send, BatchPolicy(interval=0.01))
    try:
        batcher.submit("r1")
        assert send.shipped.wait(5.0)
        assert send.batches == [["r1"]]
    finally:
        batcher.close()


def test_wait_returns_its_result_and_ships_what_was_queued_before() -> None:
    send = Recorder()
    batcher = ReportBatcher(send, BatchPolicy(interval=NEVER))
    try:
        batcher.submit("first")
        assert batcher.submit("second", wait=True, timeout=5.0) == "ok:second"
        assert send.batches == [["first", "second"]]
    finally:
        batcher.close()


def test_flush_ships_everything_queued() -> None:
    send = Recorder()
    batcher = ReportBatcher(send, BatchPolicy(interval=NEVER))
    try:
        for n in range(3):
            batcher.submit(f"r{n}")
        assert batcher.flush(timeout=5.0)
        assert send.batches == [["r0", "r1", "r2"]]
    finally:
        batcher.close()


def test_transient_failures_are_retried() -> None:
    busy = error_for(grpc.StatusCode.UNAVAILABLE, "sidecar restarting")
    send = Recorder(failures=[busy, busy])
    batcher = ReportBatcher(send, NO_WAIT)
    try:
        assert batcher.submit("r1", wait=True, timeout=5.0) == "ok:r1"
    finally:
        batcher.close()


def test_dropped_reports_are_logged_and_waiters_see_the_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    busy = error_for(grpc.StatusCode.UNAVAILABLE, "sidecar gone")
    send = Recorder(failures=[busy, busy, busy])
    batcher = ReportBatcher(send, NO_WAIT, describe=lambda item: f"decision {item}")
    try:
        with caplog.at_level(logging.ERROR, "faregate.clients"):
            batcher.submit("d-1")
            with pytest.raises(FaregateError, match="sidecar gone"):
                batcher.submit("d-2", wait=True, timeout=5.0)
    finally:
        batcher.close()
    assert send.batches == []
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "2 usage report(s) not delivered after 3 attempt(s)" in record.getMessage()
    assert "decision d-1, decision d-2" in record.getMessage()


def test_permanent_errors_are_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    invalid = error_for(grpc.StatusCode.INVALID_ARGUMENT, "reports[0].decision_id: required")
    send = Recorder(failures=[invalid])
    batcher = ReportBatcher(send, NO_WAIT)
    try:
        with caplog.at_level(logging.ERROR, "faregate.clients"), pytest.raises(FaregateError):
            batcher.submit("r1", wait=True, timeout=5.0)
    finally:
        batcher.close()
    assert "after 1 attempt(s)" in caplog.text


def test_closed_batcher_refuses_new_reports() -> None:
    batcher = ReportBatcher(Recorder())
    batcher.close()
    batcher.close()
    with pytest.raises(FaregateError, match="closed"):
        batcher.submit("late")


def test_async_batcher_waits_flushes_and_closes() -> None:
    batches: list[list[str]] = []

    async def send(items: Sequence[str]) -> list[str]:
        batches.append(list(items))
        return [f"ok:{item}" for item in items]

    async def scenario() -> None:
        batcher: AsyncReportBatcher[str, str] = AsyncReportBatcher(
            send, BatchPolicy(max_batch=2, interval=NEVER)
        )
        await batcher.submit("a")
        assert await batcher.submit("b", wait=True) == "ok:b"
        await batcher.submit("c")
        await batcher.flush()
        await batcher.submit("d")
        await batcher.close()
        with pytest.raises(FaregateError):
            await batcher.submit("e")

    asyncio.run(scenario())
    assert batches == [["a", "b"], ["c"], ["d"]]
