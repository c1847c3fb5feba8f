"""Leases over Sync and the budget admin calls, against the in-memory store."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from controlplane.admin_service import AdminService
from controlplane.clock import FixedClock
from controlplane.lease_sweeper import LeaseSweeper
from controlplane.leases import LeaseState
from controlplane.metrics import ControlPlaneMetrics
from controlplane.sync_service import SyncService
from faregate.model import Budget, Snapshot
from faregate.v1 import admin_pb2, control_pb2, types_pb2
from tests.unit.controlplane.fake_grpc import FakeContext
from tests.unit.controlplane.memory_store import MemoryStore
from tests.unit.controlplane.test_sync_service import SettableSource, Sidecar

NOW = int(datetime(2026, 12, 31, 23, 0, tzinfo=UTC).timestamp() * 1000)
LIMIT = 1_000_000
SNAPSHOT = Snapshot(
    version="vbudgets",
    revision=1,
    created_at_unix_ms=0,
    models=(),
    capabilities=(),
    budgets=(Budget("ops", LIMIT, period="month", tenant="acme", soft_thresholds=(0.5,)),),
)


def services(
    store: MemoryStore, clock: FixedClock
) -> tuple[SyncService, AdminService, ControlPlaneMetrics]:
    metrics = ControlPlaneMetrics(CollectorRegistry())
    source = SettableSource(SNAPSHOT)
    sync = SyncService(
        store=store,
        source=source,
        metrics=metrics,
        clock=clock,
        controlplane_id="cp",
        heartbeat_interval=3600,
        lease_ttl_ms=30_000,
    )
    admin = AdminService(
        store=store, source=source, metrics=metrics, clock=clock, on_applied=lambda: None
    )
    return sync, admin, metrics


async def connected(sync: SyncService) -> Sidecar:
    sidecar = Sidecar(sync, running=SNAPSHOT.version)
    assert (await sidecar.receive()).HasField("welcome")
    return sidecar


async def ask(
    sidecar: Sidecar, budget: str = "ops", nanos: int = 100_000
) -> control_pb2.LeaseGrant:
    request = control_pb2.LeaseRequest(
        budget=budget, requested_nanos=nanos, demand_nanos_per_s=10, period_key="2026-11"
    )
    sidecar.send(lease_request=request)
    return (await sidecar.receive()).lease_grant


def charged_batch(seq: int, lease_id: str, cost: int, *closes: control_pb2.LeaseClose) -> object:
    record = types_pb2.UsageRecord(
        decision_id=f"d{seq}",
        cost_nanos=cost,
        decided_at_unix_ms=NOW,
        reported_at_unix_ms=NOW,
        budgets=["ops"],
        charges=[types_pb2.BudgetCharge(budget="ops", lease_id=lease_id)],
    )
    return control_pb2.UsageBatch(
        incarnation="inc-1", seq=seq, records=[record], lease_closes=closes
    )


def test_a_request_gets_a_durable_cumulative_grant_in_the_current_period() -> None:
    async def scenario() -> None:
        store, clock = MemoryStore(), FixedClock(NOW)
        sync, _, metrics = services(store, clock)
        sidecar = await connected(sync)
        grant = await ask(sidecar)
        assert (grant.budget, grant.period_key, grant.granted_nanos) == ("ops", "2026-12", 100_000)
        assert (grant.ttl_ms, grant.refresh_after_ms) == (30_000, 10_000)
        assert grant.expires_at_unix_ms == NOW + 30_000
        assert grant.budget_limit_nanos == LIMIT and grant.reason == ""
        assert store.leases[grant.lease_id].granted_nanos == 100_000  # stored before sent
        again = await ask(sidecar, nanos=50_000)
        assert (again.lease_id, again.granted_nanos) == (grant.lease_id, 150_000)
        assert metrics.lease_granted_nanos._value.get() == 150_000
        await sidecar.hang_up()

    asyncio.run(scenario())


def test_unknown_budget_gets_nothing_with_a_reason() -> None:
    async def scenario() -> None:
        sync, _, _ = services(MemoryStore(), FixedClock(NOW))
        sidecar = await connected(sync)
        grant = await ask(sidecar, budget="nope")
        assert grant.granted_nanos == 0 and "unknown budget 'nope'" in grant.reason
        await sidecar.hang_up()

    asyncio.run(scenario())


def test_less_than_asked_says_why_and_the_period_rolls_over() -> None:
    async def scenario() -> None:
        store, clock = MemoryStore(), FixedClock(NOW)
        sync, _, _ = services(store, clock)
        sidecar = await connected(sync)
        first = await ask(sidecar, nanos=5 * LIMIT)
        assert first.granted_nanos == LIMIT and first.reason
        clock.advance(2 * 3_600_000)  # 2027-01-01 01:00
        rolled = await ask(sidecar, nanos=10)
        assert (rolled.period_key, rolled.granted_nanos) == ("2027-01", 10)
        assert rolled.lease_id != first.lease_id
        await sidecar.hang_up()

    asyncio.run(scenario())


def test_usage_moves_money_and_a_close_returns_the_rest() -> None:
    async def scenario() -> None:
        store, clock = MemoryStore(), FixedClock(NOW)
        sync, admin, _ = services(store, clock)
        sidecar = await connected(sync)
        grant = await ask(sidecar, nanos=600_000)
        sidecar.send(usage=charged_batch(1, grant.lease_id, 550_000))
        assert (await sidecar.receive()).usage_ack.ok
        refreshed = await ask(sidecar, nanos=0)
        assert refreshed.soft_threshold_crossed  # committed 55% past the 50% threshold
        assert refreshed.budget_committed_nanos == 550_000
        listed = await admin.ListBudgets(admin_pb2.ListBudgetsRequest(), FakeContext())  # type: ignore[arg-type]
        (status,) = listed.budgets
        assert (status.committed_nanos, status.outstanding_nanos) == (550_000, 50_000)
        assert status.remaining_nanos == LIMIT - 600_000 and status.open_leases == 1
        assert status.burn_rate_nanos_per_hour == 550_000 and status.scope == "tenant=acme"
        close = control_pb2.LeaseClose(lease_id=grant.lease_id, budget="ops", spent_nanos=550_000)
        sidecar.send(usage=control_pb2.UsageBatch(incarnation="inc-1", seq=2, lease_closes=[close]))
        assert (await sidecar.receive()).usage_ack.ok
        assert store.leases[grant.lease_id].state is LeaseState.CLOSED
        leases = await admin.ListLeases(admin_pb2.ListLeasesRequest(), FakeContext())  # type: ignore[arg-type]
        assert list(leases.leases) == []
        everything = await admin.ListLeases(
            admin_pb2.ListLeasesRequest(include_closed=True),
            FakeContext(),  # type: ignore[arg-type]
        )
        (closed,) = everything.leases
        assert (closed.state, closed.applied_nanos, closed.held_nanos) == ("closed", 550_000, 0)
        await sidecar.hang_up()

    asyncio.run(scenario())


def test_the_sweeper_waits_out_its_margin_then_expires_and_late_usage_counts() -> None:
    async def scenario() -> None:
        store, clock = MemoryStore(), FixedClock(NOW)
        sync, _, metrics = services(store, clock)
        sweeper = LeaseSweeper(store, clock, metrics, margin_ms=60_000)
        sidecar = await connected(sync)
        grant = await ask(sidecar)
        clock.advance(59_000)  # the lease lapsed, but this replica is too young
        assert await sweeper.sweep() == 0
        clock.advance(60_000)
        assert await sweeper.sweep() == 1
        assert store.leases[grant.lease_id].state is LeaseState.EXPIRED
        sidecar.send(usage=charged_batch(1, grant.lease_id, 7))
        assert (await sidecar.receive()).usage_ack.ok
        assert store.periods[("ops", "2026-12")] == [7, 0, 7]
        assert metrics.usage_late_nanos._value.get() == 7
        await sidecar.hang_up()

    asyncio.run(scenario())
