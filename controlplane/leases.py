"""Budget leases as the control plane records them, and the rules about them that are
not the allocation itself (docs/budgets.md, "Leases over Sync").

A lease is keyed by (sidecar, incarnation, budget, period key): one per sidecar
process per budget period, topped up in place, so its id is derived from that key and
a repeated request, through any replica, finds the same row. Its cumulative grant
only grows while it is open; a lease found closed, forfeited or expired when its
sidecar asks again is reopened holding nothing (its grant reset to what the ledger
applied through it), because its remainder already went back to the budget.

Also here: the expiry cutoff (never within the safety margin after this replica
started, so sidecars have a chance to reconnect after an outage), the soft-threshold
signal and the period key a usage charge counts in.

Pure: must not import grpc, sqlalchemy or `faregate.v1`, nor read a clock.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from faregate.budget_rules import soft_threshold_nanos
from faregate.model import Budget, UsageRecord
from faregate.periods import period_key, period_window

DEFAULT_TTL_MS = 30_000
DEFAULT_EXPIRY_MARGIN_MS = 10 * 60_000


class LeaseState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"  # the sidecar gave it back: its remainder returned
    FORFEITED = "forfeited"  # closed after a crash: its remainder counted as spent
    EXPIRED = "expired"  # neither refreshed nor closed in time: its remainder returned


@dataclass(frozen=True, slots=True)
class Lease:
    lease_id: str
    budget: str
    period_key: str
    sidecar_id: str
    service: str
    incarnation: str
    granted_nanos: int  # cumulative
    applied_nanos: int  # usage the ledger applied through this lease
    demand_nanos_per_s: int
    expires_at_ms: int
    ttl_ms: int
    state: LeaseState
    created_at_ms: int
    updated_at_ms: int

    @property
    def held_nanos(self) -> int:
        """What this lease adds to the budget's outstanding `O`."""
        if self.state is not LeaseState.OPEN:
            return 0
        return max(0, self.granted_nanos - self.applied_nanos)


@dataclass(frozen=True, slots=True)
class LeaseAsk:
    """A sidecar's request for a budget, resolved to the current period by the service."""

    sidecar_id: str
    service: str
    incarnation: str
    budget: str
    period_key: str
    limit_nanos: int
    requested_nanos: int
    demand_nanos_per_s: int
    ttl_ms: int
    now_ms: int


@dataclass(frozen=True, slots=True)
class LeaseGrant:
    """What a grant wrote (durably, before anyone sends it)."""

    lease: Lease
    delta_nanos: int
    reason: str  # why less than asked, "" if all
    limit_nanos: int
    committed_nanos: int  # C after the grant
    outstanding_nanos: int  # O after the grant, this lease included


@dataclass(frozen=True, slots=True)
class BudgetTotals:
    """One budget period as the store has it (all zero for a period never touched)."""

    budget: str
    period_key: str
    committed_nanos: int = 0
    outstanding_nanos: int = 0
    forfeited_nanos: int = 0
    late_nanos: int = 0
    open_leases: int = 0


def lease_id(sidecar_id: str, incarnation: str, budget: str, key: str) -> str:
    """A stable id for the one lease of that key (fields NUL-separated: unambiguous)."""
    digest = hashlib.sha256("\0".join((sidecar_id, incarnation, budget, key)).encode())
    return "ls-" + digest.hexdigest()[:24]


def lease_ask(
    budget: Budget,
    *,
    sidecar_id: str,
    service: str,
    incarnation: str,
    requested_nanos: int,
    demand_nanos_per_s: int,
    ttl_ms: int,
    now_ms: int,
) -> LeaseAsk:
    """A request resolved to the budget's period at `now_ms`, whatever period the
    sidecar named: after a rollover it gets a lease on the new one. The TTL is cut at
    the period's end, so a lease never authorises spend beyond its period."""
    _, period_end = period_window(budget.period, budget.time_zone, now_ms)
    return LeaseAsk(
        sidecar_id=sidecar_id,
        service=service,
        incarnation=incarnation,
        budget=budget.name,
        period_key=period_key(budget.period, budget.time_zone, now_ms),
        limit_nanos=budget.limit_nanos,
        requested_nanos=max(0, requested_nanos),
        demand_nanos_per_s=max(0, demand_nanos_per_s),
        ttl_ms=max(1, min(ttl_ms, period_end - now_ms)),
        now_ms=now_ms,
    )


def expiry_cutoff(now_ms: int, started_at_ms: int, margin_ms: int) -> int | None:
    """Leases whose expiry is before the answer may be expired; None: none may yet."""
    if now_ms < started_at_ms + margin_ms:
        return None
    return now_ms - margin_ms


def soft_threshold_crossed(budget: Budget, committed_nanos: int) -> bool:
    """Has actual spend (committed, not grants held) reached the lowest soft threshold?

    Committed alone: leases hand most of what is left to busy sidecars early in a
    period, so counting grants would signal downgrades long before money is spent."""
    if not budget.soft_thresholds:
        return False
    return committed_nanos >= soft_threshold_nanos(budget)


def with_period_keys(
    records: Sequence[UsageRecord], budgets: Mapping[str, Budget], now_ms: int
) -> tuple[UsageRecord, ...]:
    """Records whose charges all name a period key: a charge without one counts in the
    period its call was decided in (or reported, or arrived, when times are missing).
    A charge of a budget the snapshot does not know keeps an empty key."""
    out = []
    for record in records:
        if all(c.period_key for c in record.charges):
            out.append(record)
            continue
        at = record.decided_at_unix_ms or record.reported_at_unix_ms or now_ms
        charges = tuple(
            c
            if c.period_key or c.budget not in budgets
            else dataclasses.replace(
                c,
                period_key=period_key(budgets[c.budget].period, budgets[c.budget].time_zone, at),
            )
            for c in record.charges
        )
        out.append(dataclasses.replace(record, charges=charges))
    return tuple(out)
