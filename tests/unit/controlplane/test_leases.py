"""controlplane.leases and controlplane.budget_status: the rules around leases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controlplane.budget_status import budget_status, projected_exhaustion, scope_text
from controlplane.leases import (
    BudgetTotals,
    expiry_cutoff,
    lease_ask,
    lease_id,
    soft_threshold_crossed,
    with_period_keys,
)
from faregate.model import Action, Budget, BudgetCharge, Outcome, UsageRecord

HOUR = 3_600_000
MONTHLY = Budget("ops", 100_000_000, period="month", tenant="acme", team="ops")


def at(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def test_lease_ids_are_stable_and_distinct_per_holder_and_period() -> None:
    assert lease_id("a", "i", "b", "2026-12") == lease_id("a", "i", "b", "2026-12")
    assert lease_id("a", "i", "b", "2026-12") != lease_id("a", "i", "b", "2027-01")
    assert lease_id("a", "ib", "", "k") != lease_id("a", "i", "b", "k")


def test_a_request_lands_in_the_current_period_and_never_outlives_it() -> None:
    ask = lease_ask(
        MONTHLY,
        sidecar_id="sc",
        service="svc",
        incarnation="i1",
        requested_nanos=-5,
        demand_nanos_per_s=-1,
        ttl_ms=30_000,
        now_ms=at("2026-12-31T23:59:50"),
    )
    assert ask.period_key == "2026-12"
    assert ask.ttl_ms == 10_000  # cut at the month's end
    assert (ask.requested_nanos, ask.demand_nanos_per_s) == (0, 0)
    rolled = lease_ask(
        MONTHLY,
        sidecar_id="sc",
        service="svc",
        incarnation="i1",
        requested_nanos=5,
        demand_nanos_per_s=1,
        ttl_ms=30_000,
        now_ms=at("2027-01-01T00:00:01"),
    )
    assert (rolled.period_key, rolled.ttl_ms) == ("2027-01", 30_000)


@pytest.mark.parametrize(
    ("now", "started", "margin", "cutoff"),
    [
        (1_000, 0, 600, 400),
        (1_000, 500, 600, None),  # within the margin after this replica started
        (1_100, 500, 600, 500),
    ],
)
def test_expiry_cutoff(now: int, started: int, margin: int, cutoff: int | None) -> None:
    assert expiry_cutoff(now, started, margin) == cutoff


def test_soft_threshold_counts_committed_spend_only() -> None:
    budget = Budget("b", 1_000, soft_thresholds=(0.8, 0.9))
    assert not soft_threshold_crossed(budget, 799)
    assert soft_threshold_crossed(budget, 800)
    assert not soft_threshold_crossed(Budget("b", 1_000), 5_000)


def record(charges: tuple[BudgetCharge, ...], decided_at: int) -> UsageRecord:
    return UsageRecord(
        "d", "svc", "cap", "acme", "ops", "m", "p", Action.ALLOW, 1, 0, 1, 5, 5, 5, "p", "v",
        Outcome.SUCCESS, 1, decided_at, decided_at, charges=charges,
    )  # fmt: skip


def test_charges_without_a_period_count_in_the_period_of_their_call() -> None:
    charges = (
        BudgetCharge("ops", "ls-1"),
        BudgetCharge("ops", "ls-2", period_key="2026-11"),
        BudgetCharge("unknown", "ls-3"),
    )
    (filled,) = with_period_keys([record(charges, at("2026-12-04T10:00:00"))], {"ops": MONTHLY}, 0)
    assert [c.period_key for c in filled.charges] == ["2026-12", "2026-11", ""]


def test_scope_text() -> None:
    assert scope_text(MONTHLY) == "tenant=acme team=ops"
    assert scope_text(Budget("all", 1, labels={"env": "prod"})) == "env=prod"
    assert scope_text(Budget("all", 1)) == "all"


@pytest.mark.parametrize(
    ("limit", "committed", "burn", "end", "expected"),
    [
        (100, 40, 60, 10 * HOUR, HOUR),  # 60 left at 60/h: in an hour
        (100, 40, 0, 10 * HOUR, 0),  # nothing burning
        (100, 40, 6, 5 * HOUR, 0),  # 10 h away: after the period's end
        (100, 100, 6, 5 * HOUR, 0),  # already reached: now, which is 0 here
        (100, 40, 7, 10 * HOUR, 30_857_143),  # 8.57 h, rounded up: never early
    ],
)
def test_projected_exhaustion(
    limit: int, committed: int, burn: int, end: int, expected: int
) -> None:
    assert projected_exhaustion(limit, committed, burn, 0, end) == expected


def test_budget_status_combines_totals_burn_and_period() -> None:
    now = at("2026-12-04T12:00:00")
    totals = BudgetTotals("ops", "2026-12", 40_000_000, 30_000_000, 1_000, 2_000, 3)
    status = budget_status(MONTHLY, totals, 10_000_000, now)
    assert status.remaining_nanos == 30_000_000
    assert status.burn_rate_nanos_per_hour == 10_000_000
    assert status.projected_exhaustion_unix_ms == now + 6 * HOUR  # (100 - 40) / 10 per hour
    assert status.period_end_unix_ms == at("2027-01-01T00:00:00")
    assert (status.open_leases, status.forfeited_nanos, status.late_nanos) == (3, 1_000, 2_000)
    fixed = budget_status(Budget("f", 10, period="fixed"), BudgetTotals("f", "fixed"), 0, now)
    assert fixed.period_end_unix_ms == 0 and fixed.projected_exhaustion_unix_ms == 0
