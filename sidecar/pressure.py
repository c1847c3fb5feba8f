"""Budget pressure: the engine's one question to whatever tracks spending.

After ranking and ceilings, the engine asks a `BudgetPressure` whether a budget
covering this request on the chosen route is under pressure; if so it steps one
model down the downgrade chain (`downgrade:budget-soft`, naming the budget). The
answer comes from the lease book (`leases.LeaseBook`: the grant's soft-threshold
flag, or spend since the threshold was reached); the engine cannot tell.

An implementation must answer quickly and without side effects (dry runs ask
too), and must take time from `now_ms`, never from a clock.
Pure: must not import gRPC or the wire types (`faregate.v1`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from faregate.model import Snapshot
from sidecar.decision import Candidate, RouteRequest


@dataclass(frozen=True, slots=True)
class Pressure:
    """A budget asking for cheaper routes, and why, in one line for the decision."""

    budget: str
    reason: str


class BudgetPressure(Protocol):
    def pressure(
        self, snapshot: Snapshot, request: RouteRequest, route: Candidate, now_ms: int
    ) -> Pressure | None:
        """The first budget covering `request` on `route` that is under pressure, if any."""
        ...


class NoPressure:
    """No budget is ever under pressure: for engines without spend tracking."""

    def pressure(
        self, snapshot: Snapshot, request: RouteRequest, route: Candidate, now_ms: int
    ) -> Pressure | None:
        return None


NO_PRESSURE = NoPressure()
