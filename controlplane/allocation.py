"""The budget allocator: how much of a budget one sidecar's lease may be topped up by.

A plain function over one budget period's state (docs/budgets.md, "Allocation"). The
SQL store calls it inside the transaction that holds the period's row lock, writes
what it answers, and only then is the grant sent; nothing here knows about rows,
streams or time.

What "fair" means. Budget that nobody holds yet, `A = L - C - O`, is the only source
of a grant, so a grant never takes from what another sidecar already holds, and the
invariant `C + O <= L` cannot be broken by a grant. Of what is left to spend,
`L - C`, each open lease's *fair holding* is the share its recent demand (spend rate)
is of all open leases' demand: under contention every sidecar converges to holding a
slice proportional to how fast it spends. A *floor* of `floor_fraction / n` of
`L - C` (n open leases, the asker's included) keeps a new or quiet sidecar from being
starved by a busy one. A sidecar asking for less than its fair holding minus what it
already holds gets exactly what it asks; one asking for more gets the difference up
to its fair holding, and never more than `A`. When no open lease reports any demand,
all shares are equal. When `A` is exhausted the only ways to more budget are that
another lease returns its remainder (close, expiry) or the period rolls over.

Pure: must not import grpc, sqlalchemy, `faregate.v1` or read a clock. Money is
integer nano-USD; every division rounds down, so a grant is never more than its
exact rational value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction

FLOOR_FRACTION = Fraction(1, 10)


@dataclass(frozen=True, slots=True)
class Holding:
    """Another open lease on the same budget period: granted `g`, applied `c`, demand `d`."""

    granted_nanos: int
    applied_nanos: int
    demand_nanos_per_s: int

    @property
    def held_nanos(self) -> int:
        return max(0, self.granted_nanos - self.applied_nanos)


@dataclass(frozen=True, slots=True)
class BudgetState:
    """One budget in one period: limit `L`, committed `C` and the *other* open leases."""

    limit_nanos: int
    committed_nanos: int
    others: Sequence[Holding] = ()

    @property
    def outstanding_nanos(self) -> int:
        """`O` without the asker's own lease."""
        return sum(h.held_nanos for h in self.others)


@dataclass(frozen=True, slots=True)
class Ask:
    """The asking sidecar's lease (new: granted = applied = 0) and its top-up request."""

    requested_nanos: int
    demand_nanos_per_s: int
    granted_nanos: int = 0
    applied_nanos: int = 0

    @property
    def held_nanos(self) -> int:
        return max(0, self.granted_nanos - self.applied_nanos)


class Limit(StrEnum):
    """What bounded a grant, in order of precedence when several bind equally."""

    REQUESTED = "requested"  # the ask itself: granted in full
    EXHAUSTED = "exhausted"  # nothing unheld: A <= 0
    FAIR_SHARE = "fair_share"  # the asker already holds (almost) its fair holding
    AVAILABLE = "available"  # what no one holds ran short


@dataclass(frozen=True, slots=True)
class Allocation:
    delta_nanos: int  # the top-up: added to the lease's cumulative grant
    limit: Limit
    fair_holding_nanos: int
    available_nanos: int  # A before this grant

    def reason(self, requested_nanos: int) -> str:
        """Why less than asked was granted ("" when it was not)."""
        if self.limit is Limit.REQUESTED or self.delta_nanos >= requested_nanos:
            return ""
        if self.limit is Limit.EXHAUSTED:
            return "budget exhausted: everything left is committed or held by other leases"
        if self.limit is Limit.FAIR_SHARE:
            return (
                f"fair share: this lease may hold {self.fair_holding_nanos} nanos "
                "at its share of demand"
            )
        return f"only {self.available_nanos} nanos are not held by other leases"


def fair_holding(state: BudgetState, ask: Ask, floor_fraction: Fraction = FLOOR_FRACTION) -> int:
    """`F_j`: the asker's demand share of `L - C`, at least the floor, at most `L - C`."""
    spendable = max(0, state.limit_nanos - state.committed_nanos)
    leases = len(state.others) + 1
    total_demand = ask.demand_nanos_per_s + sum(h.demand_nanos_per_s for h in state.others)
    if total_demand > 0:
        share = spendable * max(0, ask.demand_nanos_per_s) // total_demand
    else:
        share = spendable // leases  # nobody reports demand: equal shares
    floor = spendable * floor_fraction.numerator // (floor_fraction.denominator * leases)
    return min(spendable, max(share, floor))


def allocate(state: BudgetState, ask: Ask, floor_fraction: Fraction = FLOOR_FRACTION) -> Allocation:
    """The top-up `delta_j = min(q_j, max(0, F_j - h_j), A)` for `ask`, never negative."""
    available = state.limit_nanos - state.committed_nanos - state.outstanding_nanos - ask.held_nanos
    fair = fair_holding(state, ask, floor_fraction)
    requested = max(0, ask.requested_nanos)
    room = max(0, fair - ask.held_nanos)
    delta = max(0, min(requested, room, available))
    if delta == requested:
        limit = Limit.REQUESTED
    elif available <= 0:
        limit = Limit.EXHAUSTED
    elif room <= available:
        limit = Limit.FAIR_SHARE
    else:
        limit = Limit.AVAILABLE
    return Allocation(delta, limit, fair, max(0, available))
