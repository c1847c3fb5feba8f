"""Approvals through the Sync and Admin services against an in-memory store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from prometheus_client import CollectorRegistry

from controlplane.admin_service import AdminService
from controlplane.approval_feed import ApprovalWatcher
from controlplane.approvals import ApprovalState
from controlplane.clock import FixedClock
from controlplane.metrics import ControlPlaneMetrics
from controlplane.sync_service import SyncService
from faregate.v1 import admin_pb2, control_pb2, types_pb2
from tests.unit.controlplane.fake_grpc import Aborted, FakeContext
from tests.unit.controlplane.memory_store import MemoryStore
from tests.unit.controlplane.test_sync_service import FIRST, SettableSource

T0 = 1_700_000_000_000
HOUR = 3_600_000
Message = control_pb2.SidecarMessage


def request(approval_id: str = "ap-1") -> control_pb2.ApprovalRequest:
    return control_pb2.ApprovalRequest(
        approval_id=approval_id,
        capability="summarization",
        tenant="acme",
        team="risk",
        model="claude-sonnet-4",
        estimated_cost_nanos=300_000_000,
        risk=types_pb2.RISK_LEVEL_HIGH,
        labels={"ticket": "T-1"},
        idempotency_key="k-1",
        decision_id="d-1",
    )


class Sidecar:
    def __init__(self, service: SyncService, sidecar_id: str) -> None:
        self.inbox: asyncio.Queue[Message | None] = asyncio.Queue()
        hello = control_pb2.Hello(
            sidecar_id=sidecar_id, service="svc", incarnation="i", snapshot_version=FIRST.version
        )
        self.inbox.put_nowait(Message(hello=hello))
        self.stream = service.Sync(self._requests(), FakeContext())  # type: ignore[arg-type]

    async def _requests(self) -> AsyncIterator[Message]:
        while (message := await self.inbox.get()) is not None:
            yield message

    def send(self, **kind: Any) -> None:
        self.inbox.put_nowait(Message(**kind))

    async def receive(self) -> control_pb2.ControlMessage:
        return await asyncio.wait_for(anext(self.stream), 5)

    async def hang_up(self) -> None:
        self.inbox.put_nowait(None)
        _ = [message async for message in self.stream]


class Plane:
    """One replica: Sync and Admin over a store, with the approval feed between them."""

    def __init__(self, store: MemoryStore, clock: FixedClock) -> None:
        metrics = ControlPlaneMetrics(CollectorRegistry())
        source = SettableSource(FIRST)
        self.feed = ApprovalWatcher(store, clock)
        self.sync = SyncService(
            store=store,
            source=source,
            metrics=metrics,
            clock=clock,
            controlplane_id="cp",
            heartbeat_interval=3600,
            approvals=self.feed,
        )
        self.admin = AdminService(
            store=store,
            source=source,
            metrics=metrics,
            clock=clock,
            on_applied=lambda: None,
            on_decided=self.feed.poke,
        )

    async def decide(self, approval_id: str = "", **fields: Any) -> control_pb2.ApprovalDecision:
        message = admin_pb2.DecideApprovalRequest(approval_id=approval_id, **fields)
        return await self.admin.DecideApproval(message, FakeContext())  # type: ignore[arg-type]

    async def listed(self, include_decided: bool = False) -> list[admin_pb2.Approval]:
        message = admin_pb2.ListApprovalsRequest(include_decided=include_decided)
        response = await self.admin.ListApprovals(message, FakeContext())  # type: ignore[arg-type]
        return list(response.approvals)


async def until(predicate: Any) -> None:
    for _ in range(200):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


def test_a_request_is_stored_once_and_its_decision_reaches_every_sidecar() -> None:
    async def scenario() -> None:
        store, clock = MemoryStore(), FixedClock(T0)
        plane = Plane(store, clock)
        asker, other = Sidecar(plane.sync, "sc-1"), Sidecar(plane.sync, "sc-2")
        assert (await asker.receive()).HasField("welcome")
        assert (await other.receive()).HasField("welcome")
        asker.send(approval_request=request())
        asker.send(approval_request=request())  # a resend changes nothing
        await until(lambda: "ap-1" in store.approvals)
        (pending,) = await plane.listed()
        assert pending.request.model == "claude-sonnet-4"
        assert pending.request.risk == types_pb2.RISK_LEVEL_HIGH
        assert pending.decision.state == control_pb2.APPROVAL_STATE_PENDING
        assert pending.decision.expires_at_unix_ms == T0 + HOUR  # the default approval_ttl
        assert pending.sidecar_id == "sc-1"
        assert store.approvals["ap-1"].service == "svc"

        clock.advance(60_000)
        decision = await plane.decide("ap-1", approve=True, decided_by="ana", max_uses=2)
        assert decision.state == control_pb2.APPROVAL_STATE_APPROVED
        assert decision.expires_at_unix_ms == T0 + 60_000 + HOUR  # the default grant
        assert (decision.max_uses, decision.decided_by) == (2, "ana")
        await plane.feed.refresh()
        for sidecar in (asker, other):
            pushed = (await sidecar.receive()).approval
            assert (pushed.approval_id, pushed.state) == ("ap-1", decision.state)
        assert await plane.listed() == []
        assert [a.decision.state for a in await plane.listed(include_decided=True)] == [
            control_pb2.APPROVAL_STATE_APPROVED
        ]
        # The asker resends after a reconnect: it is answered with the decision at once.
        asker.send(approval_request=request())
        assert (await asker.receive()).approval.state == control_pb2.APPROVAL_STATE_APPROVED
        await asker.hang_up()
        await other.hang_up()

    asyncio.run(scenario())


def test_a_reconnecting_sidecar_hears_its_own_live_decisions() -> None:
    async def scenario() -> None:
        store, clock = MemoryStore(), FixedClock(T0)
        plane = Plane(store, clock)
        first = Sidecar(plane.sync, "sc-1")
        await first.receive()
        first.send(approval_request=request("ap-1"))
        first.send(approval_request=request("ap-2"))
        await until(lambda: len(store.approvals) == 2)
        await first.hang_up()
        await plane.decide("ap-1", approve=True, decided_by="ana")
        await plane.decide("ap-2", approve=False, decided_by="bo", reason="no")
        again = Sidecar(plane.sync, "sc-1")
        assert (await again.receive()).HasField("welcome")
        replayed = {(await again.receive()).approval.approval_id for _ in range(2)}
        assert replayed == {"ap-1", "ap-2"}
        await again.hang_up()
        stranger = Sidecar(plane.sync, "sc-9")
        await stranger.receive()
        stranger.send(approval_request=control_pb2.ApprovalRequest())  # no id: dropped
        stranger.send(heartbeat=control_pb2.Heartbeat())
        await stranger.hang_up()
        assert set(store.approvals) == {"ap-1", "ap-2"}

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("fields", "code", "details"),
    [
        ({}, grpc.StatusCode.INVALID_ARGUMENT, "approval_id: required"),
        ({"approval_id": "nope", "approve": True}, grpc.StatusCode.NOT_FOUND, "nope"),
        (
            {"approval_id": "ap-1", "approve": True, "valid_for_ms": -5},
            grpc.StatusCode.INVALID_ARGUMENT,
            "valid_for_ms: must not be negative",
        ),
        (
            {"approval_id": "ap-1", "approve": True, "max_uses": -1},
            grpc.StatusCode.INVALID_ARGUMENT,
            "max_uses: must not be negative",
        ),
        (
            {"approval_id": "ap-1", "approve": False, "valid_for_ms": 5},
            grpc.StatusCode.INVALID_ARGUMENT,
            "valid_for_ms: only an approval",
        ),
    ],
)
def test_bad_decisions_are_refused_naming_the_problem(
    fields: dict[str, Any], code: grpc.StatusCode, details: str
) -> None:
    async def scenario() -> None:
        store, clock = MemoryStore(), FixedClock(T0)
        plane = Plane(store, clock)
        with pytest.raises(Aborted) as refused:
            await plane.decide(**fields)
        assert refused.value.code == code
        assert details in refused.value.details

    asyncio.run(scenario())


def test_decided_and_expired_approvals_are_failed_preconditions() -> None:
    async def scenario() -> None:
        store, clock = MemoryStore(), FixedClock(T0)
        plane = Plane(store, clock)
        sidecar = Sidecar(plane.sync, "sc-1")
        await sidecar.receive()
        sidecar.send(approval_request=request("ap-1"))
        sidecar.send(approval_request=request("ap-2"))
        await until(lambda: len(store.approvals) == 2)
        await sidecar.hang_up()
        await plane.decide("ap-1", approve=False, decided_by="bo", reason="no")
        with pytest.raises(Aborted) as twice:
            await plane.decide("ap-1", approve=True, decided_by="ana")
        assert twice.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert "already denied by bo" in twice.value.details
        clock.advance(HOUR)
        with pytest.raises(Aborted) as late:
            await plane.decide("ap-2", approve=True, decided_by="ana")
        assert late.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert "expired" in late.value.details
        assert store.approvals["ap-2"].state is ApprovalState.EXPIRED

    asyncio.run(scenario())
