"""Leases and budget totals on real SQLite and PostgreSQL (`database_url` fixture)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from controlplane.admin_service import AdminService
from controlplane.clock import FixedClock
from controlplane.leases import BudgetTotals, LeaseAsk, LeaseGrant, LeaseState
from controlplane.metrics import ControlPlaneMetrics
from controlplane.migrate import upgrade
from controlplane.sql_store import SqlStore
from controlplane.store import UsageBatch
from faregate.model import Action, Budget, BudgetCharge, LeaseClose, Outcome, Snapshot, UsageRecord
from faregate.v1 import admin_pb2
from tests.unit.controlplane.fake_grpc import FakeContext

LIMIT = 1_000_000
KEY = "2026-12"
NOW = int(datetime(2026, 12, 10, 12, tzinfo=UTC).timestamp() * 1000)


@pytest.fixture
def store(database_url: str) -> Iterator[SqlStore]:
    opened = SqlStore.open(database_url)
    upgrade(opened.engine)
    try:
        yield opened
    finally:
        opened.close()


def ask(sidecar: str, requested: int, *, demand: int = 10, now: int = NOW) -> LeaseAsk:
    return LeaseAsk(sidecar, "svc", "inc-1", "ops", KEY, LIMIT, requested, demand, 30_000, now)


def charge(decision_id: str, lease_id: str, cost: int, reported_at: int = NOW) -> UsageRecord:
    return UsageRecord(
        decision_id, "svc", "cap", "acme", "ops", "m", "p", Action.ALLOW, 1, 0, 1, cost, cost,
        cost, "p", "v", Outcome.SUCCESS, 1, reported_at, reported_at, budgets=("ops",),
        charges=(BudgetCharge("ops", lease_id, KEY, cost),),
    )  # fmt: skip


def totals(store: SqlStore) -> BudgetTotals:
    (found,) = store.budget_totals([("ops", KEY)])
    return found


def test_grants_top_up_in_place_and_never_exceed_the_limit(store: SqlStore) -> None:
    first = store.grant_lease(ask("a", 300_000))
    again = store.grant_lease(ask("a", 300_000))
    assert again.lease.lease_id == first.lease.lease_id
    assert again.lease.granted_nanos == 600_000
    other = store.grant_lease(ask("b", 2 * LIMIT))
    assert other.lease.granted_nanos == 400_000 and other.reason  # all that is unheld
    assert store.grant_lease(ask("c", 1)).lease.granted_nanos == 0
    assert totals(store).outstanding_nanos == LIMIT
    assert [lease.sidecar_id for lease in store.list_leases(include_closed=False)] == [
        "a",
        "b",
        "c",
    ]


def test_concurrent_grants_from_separate_stores_never_exceed_the_limit(database_url: str) -> None:
    first = SqlStore.open(database_url)
    upgrade(first.engine)
    first.close()
    grants: list[LeaseGrant] = []
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def hammer(index: int) -> None:
        own = SqlStore.open(database_url)  # its own engine: as another replica would be
        try:
            start.wait()
            for _ in range(10):
                grants.append(own.grant_lease(ask(f"sc-{index}", 40_000, demand=index + 1)))
        except BaseException as error:
            errors.append(error)
        finally:
            own.close()

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    check = SqlStore.open(database_url)
    try:
        held = sum(lease.granted_nanos for lease in check.list_leases(include_closed=True))
        assert held <= LIMIT
        assert sum(g.delta_nanos for g in grants) == held
        assert held >= LIMIT * 9 // 10  # contention did not leave the budget unused
    finally:
        check.close()


def test_usage_moves_money_from_outstanding_to_committed_once(store: SqlStore) -> None:
    lease = store.grant_lease(ask("a", 500_000)).lease
    batch = UsageBatch("a", "inc-1", 1, (charge("d1", lease.lease_id, 120_000),))
    result = store.apply_usage_batch(batch, NOW)
    assert (result.duplicate, result.applied) == (False, 1)
    assert store.apply_usage_batch(batch, NOW).duplicate
    # The same decision again in another batch: skipped, and so is its charge.
    store.apply_usage_batch(UsageBatch("a", "inc-1", 2, batch.records), NOW)
    # A batch that carries one decision twice charges it once.
    twice = (charge("d2", lease.lease_id, 30_000),) * 2
    store.apply_usage_batch(UsageBatch("a", "inc-1", 3, twice), NOW)
    after = totals(store)
    assert (after.committed_nanos, after.outstanding_nanos) == (150_000, 350_000)
    (listed,) = store.list_leases(include_closed=False)
    assert listed.applied_nanos == 150_000


def test_a_close_returns_the_remainder_and_a_forfeit_keeps_it(store: SqlStore) -> None:
    kept = store.grant_lease(ask("a", 300_000)).lease
    lost = store.grant_lease(ask("b", 200_000)).lease
    batch = UsageBatch(
        "a",
        "inc-1",
        1,
        (charge("d1", kept.lease_id, 100_000),),
        (LeaseClose(kept.lease_id, "ops", 100_000, forfeit=False),),
    )
    assert store.apply_usage_batch(batch, NOW).closed == 1
    assert (totals(store).committed_nanos, totals(store).outstanding_nanos) == (100_000, 200_000)
    # Only its own sidecar may close a lease.
    stranger = UsageBatch("a", "inc-1", 2, (), (LeaseClose(lost.lease_id, "ops", 0, True),))
    assert store.apply_usage_batch(stranger, NOW).closed == 0
    forfeit = UsageBatch("b", "inc-2", 1, (), (LeaseClose(lost.lease_id, "ops", 0, True),))
    assert store.apply_usage_batch(forfeit, NOW).closed == 1
    after = totals(store)
    assert (after.committed_nanos, after.outstanding_nanos) == (300_000, 0)
    assert after.forfeited_nanos == 200_000
    # Usage of the crashed incarnation arriving after its forfeit is that money.
    late = UsageBatch("b", "inc-2", 2, (charge("d2", lost.lease_id, 50_000),))
    assert store.apply_usage_batch(late, NOW).late_nanos == 0
    assert (totals(store).committed_nanos, totals(store).forfeited_nanos) == (300_000, 150_000)
    states = {lease.sidecar_id: lease.state for lease in store.list_leases(include_closed=True)}
    assert states == {"a": LeaseState.CLOSED, "b": LeaseState.FORFEITED}


def test_expiry_returns_the_remainder_and_late_usage_is_recorded(store: SqlStore) -> None:
    lease = store.grant_lease(ask("a", 400_000)).lease
    assert store.expire_leases(lease.expires_at_ms, NOW + 60_000) == 0  # not before expiry
    assert store.expire_leases(lease.expires_at_ms + 1, NOW + 60_000) == 1
    assert totals(store).outstanding_nanos == 0
    result = store.apply_usage_batch(
        UsageBatch("a", "inc-1", 1, (charge("d1", lease.lease_id, 30_000),)), NOW
    )
    assert (result.late_records, result.late_nanos) == (1, 30_000)
    after = totals(store)
    assert (after.committed_nanos, after.late_nanos) == (30_000, 30_000)
    # Asking again reopens it holding nothing: its remainder already went back.
    reopened = store.grant_lease(ask("a", 10_000, now=NOW + 120_000)).lease
    assert (reopened.state, reopened.granted_nanos) == (LeaseState.OPEN, 40_000)


def test_offline_charges_count_in_committed_only(store: SqlStore) -> None:
    record = charge("d1", "offline:inc-1", 9_000)
    store.apply_usage_batch(UsageBatch("a", "inc-1", 1, (record,)), NOW)
    assert (totals(store).committed_nanos, totals(store).outstanding_nanos) == (9_000, 0)


class Source:
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def current(self) -> Snapshot | None:
        return self.snapshot

    async def wait_for_change(self, version: str) -> None:
        await asyncio.Event().wait()


def test_list_budgets_reports_the_numbers(store: SqlStore) -> None:
    lease = store.grant_lease(ask("a", 500_000)).lease
    records = (
        charge("d1", lease.lease_id, 100_000, reported_at=NOW - 1_800_000),
        charge("d2", lease.lease_id, 50_000, reported_at=NOW - 7_200_000),  # over an hour ago
    )
    store.apply_usage_batch(UsageBatch("a", "inc-1", 1, records), NOW)
    snapshot = Snapshot(
        "v", 1, 0, (), (), budgets=(Budget("ops", LIMIT, tenant="acme", team="ops"),)
    )
    admin = AdminService(
        store=store,
        source=Source(snapshot),
        metrics=ControlPlaneMetrics(CollectorRegistry()),
        clock=FixedClock(NOW),
        on_applied=lambda: None,
    )
    response = asyncio.run(admin.ListBudgets(admin_pb2.ListBudgetsRequest(), FakeContext()))  # type: ignore[arg-type]
    (status,) = response.budgets
    assert (status.name, status.period_key, status.scope) == ("ops", KEY, "tenant=acme team=ops")
    assert (status.limit_nanos, status.committed_nanos) == (LIMIT, 150_000)
    assert (status.outstanding_nanos, status.remaining_nanos) == (350_000, 500_000)
    assert status.burn_rate_nanos_per_hour == 100_000
    # 850,000 left at 100,000 an hour: 8.5 h, well inside December.
    assert status.projected_exhaustion_unix_ms == NOW + 30_600_000
    assert status.open_leases == 1 and status.period_end_unix_ms > NOW
