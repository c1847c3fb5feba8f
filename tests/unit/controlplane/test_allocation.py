"""controlplane.allocation: the table of docs/budgets.md's cases, and its invariants."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.allocation import Allocation, Ask, BudgetState, Holding, Limit, allocate

L = 1_000_000  # limit used by the table


@pytest.mark.parametrize(
    ("case", "state", "ask", "delta", "limit"),
    [
        (
            "first lease, small ask: granted in full",
            BudgetState(L, 0),
            Ask(requested_nanos=10_000, demand_nanos_per_s=5),
            10_000,
            Limit.REQUESTED,
        ),
        (
            "first lease, asks for more than the budget: all of L - C",
            BudgetState(L, 200_000),
            Ask(requested_nanos=5 * L, demand_nanos_per_s=5),
            800_000,
            Limit.FAIR_SHARE,
        ),
        (
            "budget spent: nothing",
            BudgetState(L, L),
            Ask(requested_nanos=1, demand_nanos_per_s=5),
            0,
            Limit.EXHAUSTED,
        ),
        (
            "overspent (estimate mode): nothing, never negative",
            BudgetState(L, L + 5),
            Ask(requested_nanos=1, demand_nanos_per_s=5),
            0,
            Limit.EXHAUSTED,
        ),
        (
            "equal demand, two leases: half each",
            BudgetState(L, 0, [Holding(100_000, 0, 10)]),
            Ask(requested_nanos=L, demand_nanos_per_s=10),
            500_000,
            Limit.FAIR_SHARE,
        ),
        (
            "busy other holds most: a quiet newcomer still gets the floor",
            BudgetState(L, 0, [Holding(900_000, 0, 1_000)]),
            Ask(requested_nanos=L, demand_nanos_per_s=0),
            # floor = 10% of L / 2 leases = 50,000, but only 100,000 is unheld
            50_000,
            Limit.FAIR_SHARE,
        ),
        (
            "fair share larger than what is unheld: only what no one holds",
            BudgetState(L, 0, [Holding(950_000, 0, 1)]),
            Ask(requested_nanos=L, demand_nanos_per_s=1_000),
            50_000,
            Limit.AVAILABLE,
        ),
        (
            "already holds its share: no top-up",
            BudgetState(L, 0, [Holding(400_000, 0, 10)]),
            Ask(requested_nanos=L, demand_nanos_per_s=10, granted_nanos=500_000),
            0,
            Limit.FAIR_SHARE,
        ),
        (
            "usage applied frees room in its own holding",
            BudgetState(L, 300_000, [Holding(200_000, 0, 10)]),
            Ask(
                requested_nanos=L,
                demand_nanos_per_s=10,
                granted_nanos=400_000,
                applied_nanos=300_000,
            ),
            # F = (L - C) / 2 = 350,000; holds 100,000 -> 250,000; A = 400,000
            250_000,
            Limit.FAIR_SHARE,
        ),
        (
            "no one reports demand: equal shares",
            BudgetState(L, 0, [Holding(0, 0, 0), Holding(0, 0, 0), Holding(0, 0, 0)]),
            Ask(requested_nanos=L, demand_nanos_per_s=0),
            250_000,
            Limit.FAIR_SHARE,
        ),
        (
            "a refresh asks for nothing and gets nothing",
            BudgetState(L, 0),
            Ask(requested_nanos=0, demand_nanos_per_s=10, granted_nanos=10_000),
            0,
            Limit.REQUESTED,
        ),
        (
            "demand 3:1 -> three quarters",
            BudgetState(L, 0, [Holding(0, 0, 1)]),
            Ask(requested_nanos=L, demand_nanos_per_s=3),
            750_000,
            Limit.FAIR_SHARE,
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_allocation_table(
    case: str, state: BudgetState, ask: Ask, delta: int, limit: Limit
) -> None:
    allocation = allocate(state, ask)
    assert (allocation.delta_nanos, allocation.limit) == (delta, limit), case


def test_reason_says_why_less_than_asked() -> None:
    exhausted = allocate(BudgetState(L, L), Ask(1, 1))
    assert "exhausted" in exhausted.reason(1)
    full = allocate(BudgetState(L, 0), Ask(10, 1))
    assert full.reason(10) == ""
    share = Allocation(5, Limit.FAIR_SHARE, 500, 900)
    assert "fair share" in share.reason(10)


def test_floor_fraction_is_a_parameter() -> None:
    state = BudgetState(L, 0, [Holding(0, 0, 1_000)])
    assert allocate(state, Ask(L, 0), floor_fraction=Fraction(1, 2)).delta_nanos == 250_000


nanos = st.integers(min_value=0, max_value=10**13)
demand = st.integers(min_value=0, max_value=10**9)
holdings = st.lists(st.builds(Holding, nanos, nanos, demand), max_size=8)


@st.composite
def situations(draw: st.DrawFn) -> tuple[BudgetState, Ask]:
    """Any budget state that satisfies the invariant before the grant."""
    others = draw(holdings)
    committed = draw(nanos)
    granted = draw(nanos)
    applied = draw(nanos)
    ask = Ask(draw(nanos), draw(demand), granted, applied)
    held = sum(h.held_nanos for h in others) + ask.held_nanos
    limit = committed + held + draw(nanos)
    return BudgetState(limit, committed, others), ask


@given(situations())
def test_a_grant_never_breaks_the_invariant(situation: tuple[BudgetState, Ask]) -> None:
    state, ask = situation
    delta = allocate(state, ask).delta_nanos
    outstanding = state.outstanding_nanos + ask.held_nanos
    assert delta >= 0
    assert state.committed_nanos + outstanding + delta <= state.limit_nanos


@given(situations())
def test_a_grant_never_exceeds_the_request(situation: tuple[BudgetState, Ask]) -> None:
    state, ask = situation
    assert allocate(state, ask).delta_nanos <= ask.requested_nanos


@given(situations(), demand, demand)
def test_more_demand_never_gets_less(
    situation: tuple[BudgetState, Ask], first: int, second: int
) -> None:
    state, ask = situation
    low, high = sorted((first, second))
    quiet = Ask(ask.requested_nanos, low, ask.granted_nanos, ask.applied_nanos)
    busy = Ask(ask.requested_nanos, high, ask.granted_nanos, ask.applied_nanos)
    assert allocate(state, quiet).delta_nanos <= allocate(state, busy).delta_nanos


@given(nanos, st.lists(st.builds(Holding, st.just(0), st.just(0), demand), max_size=8))
def test_a_newcomer_gets_at_least_the_floor_while_budget_is_unheld(
    limit: int, others: list[Holding]
) -> None:
    state = BudgetState(limit, 0, others)  # nobody holds anything yet
    floor = limit // (10 * (len(others) + 1))
    assert allocate(state, Ask(limit, 0)).delta_nanos >= floor
