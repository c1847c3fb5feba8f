"""The Sync client over an in-memory transport: no sockets, a scripted control plane.

`FakeChannel` stands in for `grpc.aio.Channel`: each `Sync` call becomes a
`FakeCall` whose writes the test reads and whose reads the test feeds.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from faregate.convert import snapshot_to_pb
from faregate.model import RiskLevel
from faregate.policy import Governance
from faregate.v1 import control_pb2
from sidecar.approvals import ApprovalBook, ApprovalRequest, ApprovalState
from sidecar.backoff import Backoff
from sidecar.control_link import ControlLink, Identity
from sidecar.convert import SnapshotFileCodec
from sidecar.journal import UsageJournal
from sidecar.snapshot_store import SnapshotStore
from tests.unit.sidecar.catalog import FakeClock, make_snapshot, record

STEP = 5.0  # generous: only a broken link ever waits this long


class FakeCall:
    def __init__(self) -> None:
        self.written: asyncio.Queue[control_pb2.SidecarMessage] = asyncio.Queue()
        self.incoming: asyncio.Queue[object] = asyncio.Queue()

    async def write(self, message: control_pb2.SidecarMessage) -> None:
        self.written.put_nowait(message)

    async def read(self) -> object:
        return await self.incoming.get()

    def push(self, **kind: Any) -> None:
        self.incoming.put_nowait(control_pb2.ControlMessage(**kind))

    def end(self) -> None:
        self.incoming.put_nowait(grpc.aio.EOF)

    async def next_written(self) -> control_pb2.SidecarMessage:
        return await asyncio.wait_for(self.written.get(), STEP)

    async def expect(self, kind: str) -> control_pb2.SidecarMessage:
        """The next message of `kind`, skipping heartbeats."""
        while True:
            message = await self.next_written()
            if message.WhichOneof("kind") == kind:
                return message
            assert message.WhichOneof("kind") == "heartbeat", message


class FakeChannel:
    def __init__(self, calls: asyncio.Queue[FakeCall]) -> None:
        self._calls = calls
        self.closed = False

    def stream_stream(self, method: str, **_: Any) -> Callable[[object], FakeCall]:
        assert method == "/faregate.v1.ControlPlane/Sync"

        def start(_requests: object) -> FakeCall:
            call = FakeCall()
            self._calls.put_nowait(call)
            return call

        return start

    async def close(self, grace: float | None = None) -> None:
        self.closed = True


@dataclasses.dataclass
class Observer:
    connected: list[bool] = dataclasses.field(default_factory=list)
    shipped: int = 0
    acked: int = 0
    rejected: int = 0

    def connected_changed(self, connected: bool) -> None:
        self.connected.append(connected)

    def records_shipped(self, count: int) -> None:
        self.shipped += count

    def records_acked(self, count: int) -> None:
        self.acked += count

    def snapshot_rejected(self) -> None:
        self.rejected += 1


@dataclasses.dataclass
class Harness:
    link: ControlLink
    store: SnapshotStore
    outbox: UsageJournal
    observer: Observer
    calls: asyncio.Queue[FakeCall]
    approvals: ApprovalBook

    async def next_call(self) -> FakeCall:
        return await asyncio.wait_for(self.calls.get(), STEP)

    async def welcome(self) -> tuple[FakeCall, control_pb2.Hello]:
        call = await self.next_call()
        hello = (await call.expect("hello")).hello
        call.push(welcome=control_pb2.Welcome(controlplane_id="cp-1", heartbeat_interval_ms=60_000))
        return call, hello


def run_with_link(tmp_path: Path, scenario: Callable[[Harness], Awaitable[None]]) -> None:
    async def main() -> None:
        calls: asyncio.Queue[FakeCall] = asyncio.Queue()
        store = SnapshotStore(tmp_path, SnapshotFileCodec())
        outbox = UsageJournal.open(tmp_path, "inc-1")
        observer = Observer()
        approvals = ApprovalBook()
        link = ControlLink(
            "cp:7400",
            Identity(sidecar_id="sc-1", service="svc", incarnation="inc-1", pid=42),
            store,
            outbox,
            observer,
            FakeClock(),
            backoff=Backoff(uniform=lambda low, high: 0.0),
            flush_interval=0.01,
            channel_factory=lambda target: FakeChannel(calls),  # type: ignore[arg-type,return-value]
            approvals=approvals,
        )
        task = asyncio.create_task(link.run())
        try:
            await scenario(Harness(link, store, outbox, observer, calls, approvals))
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            outbox.close()

    asyncio.run(main())


def test_hello_welcome_and_snapshot_ack(tmp_path: Path) -> None:
    snapshot = make_snapshot()

    async def scenario(h: Harness) -> None:
        call, hello = await h.welcome()
        assert (hello.sidecar_id, hello.service, hello.incarnation) == ("sc-1", "svc", "inc-1")
        assert hello.snapshot_version == ""
        assert hello.pid == 42
        call.push(snapshot=control_pb2.SnapshotPush(snapshot=snapshot_to_pb(snapshot)))
        ack = (await call.expect("ack")).ack
        assert ack.version == snapshot.version
        assert h.store.current == snapshot
        assert h.link.connected
        assert h.observer.connected == [True]

    run_with_link(tmp_path, scenario)


def test_bad_snapshot_is_nacked_and_the_old_one_kept(tmp_path: Path) -> None:
    good = make_snapshot()
    bad = snapshot_to_pb(make_snapshot(revision=2))
    bad.version = "v0000000000000000"

    async def scenario(h: Harness) -> None:
        call, _ = await h.welcome()
        call.push(snapshot=control_pb2.SnapshotPush(snapshot=snapshot_to_pb(good)))
        await call.expect("ack")
        call.push(snapshot=control_pb2.SnapshotPush(snapshot=bad))
        nack = (await call.expect("nack")).nack
        assert nack.version == "v0000000000000000"
        assert "does not match its content" in nack.reason
        assert h.store.current == good
        assert h.observer.rejected == 1

    run_with_link(tmp_path, scenario)


def test_unacked_usage_is_resent_with_the_same_seq_after_reconnect(tmp_path: Path) -> None:
    snapshot = make_snapshot()

    async def scenario(h: Harness) -> None:
        call, _ = await h.welcome()
        call.push(snapshot=control_pb2.SnapshotPush(snapshot=snapshot_to_pb(snapshot)))
        await call.expect("ack")
        h.outbox.append(record(1))
        h.outbox.append(record(2))
        first = (await call.expect("usage")).usage
        assert (first.incarnation, first.seq) == ("inc-1", 1)
        assert [r.decision_id for r in first.records] == ["d-1", "d-2"]

        call.end()  # the stream drops before the ACK
        again, hello = await h.welcome()
        assert hello.snapshot_version == snapshot.version  # says what it already runs
        resent = (await again.expect("usage")).usage
        assert resent == first
        again.push(usage_ack=control_pb2.UsageAck(incarnation="inc-1", seq=1, ok=True))
        assert await h.link.drain(STEP)
        assert h.outbox.is_empty
        assert (h.observer.shipped, h.observer.acked) == (4, 2)
        assert h.observer.connected == [True, False, True]

        h.outbox.append(record(3))
        following = (await again.expect("usage")).usage
        assert following.seq == 2

    run_with_link(tmp_path, scenario)


def test_duplicate_ack_also_releases_the_batch(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        call, _ = await h.welcome()
        h.outbox.append(record(1))
        batch = (await call.expect("usage")).usage
        call.push(
            usage_ack=control_pb2.UsageAck(
                incarnation="inc-1", seq=batch.seq, ok=True, duplicate=True
            )
        )
        assert await h.link.drain(STEP)

    run_with_link(tmp_path, scenario)


def pending_request(approval_id: str) -> ApprovalRequest:
    return ApprovalRequest(
        approval_id, "chat", "acme", "risk", "big", 165_000_000, RiskLevel.HIGH, {"case": "7"}
    )


def test_approval_requests_are_sent_and_resent_after_reconnect(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        now = FakeClock().now
        h.approvals.open(pending_request("ap-0"), now, 60_000)  # opened while offline
        call, _ = await h.welcome()
        first = (await call.expect("approval_request")).approval_request
        assert (first.approval_id, first.model, first.risk) == ("ap-0", "big", 3)
        assert dict(first.labels) == {"case": "7"}
        h.approvals.open(pending_request("ap-1"), now, 60_000)
        assert (await call.expect("approval_request")).approval_request.approval_id == "ap-1"

        call.end()  # dropped: neither may have reached the control plane
        again, _ = await h.welcome()
        resent = [(await again.expect("approval_request")).approval_request for _ in range(2)]
        assert sorted(r.approval_id for r in resent) == ["ap-0", "ap-1"]

    run_with_link(tmp_path, scenario)


def test_approval_decisions_reach_the_book(tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        call, _ = await h.welcome()
        decision = control_pb2.ApprovalDecision(
            approval_id="ap-9",
            state=control_pb2.APPROVAL_STATE_APPROVED,
            expires_at_unix_ms=FakeClock().now + 1_000,
            max_uses=3,
            decided_by="alice",
        )
        # The unknown state first: messages are handled in order, so once ap-9 is in
        # the book, ap-x has been handled too.
        call.push(approval=control_pb2.ApprovalDecision(approval_id="ap-x", state=42))
        call.push(approval=decision)
        call.push(heartbeat=control_pb2.Heartbeat())
        for _ in range(100):
            if len(h.approvals):
                break
            await asyncio.sleep(0.01)
        status = h.approvals.find("ap-9", "acme", "chat", "", FakeClock().now, Governance())
        assert status is not None
        assert (status.state, status.uses_left, status.decided_by) == (
            ApprovalState.APPROVED,
            3,
            "alice",
        )
        assert len(h.approvals) == 1  # the unknown state was ignored

    run_with_link(tmp_path, scenario)
