"""Budget pressure from settled local spend, per budget and calendar period.

`LocalSpendPressure` keeps, for each budget in the snapshot, a tally of the usage
this sidecar has settled in the budget's current period, fed by the usage path
(`settled`) as reports are priced. A budget covers a request when every scope key
it sets matches (tenant, team, capability, model, tier, and each label); empty
keys match everything. It is under pressure once its tally reaches its lowest
soft threshold times its limit (the limit itself when it has no soft threshold).
At or over the limit it is still only pressure: refusing spend takes budget
leases, which come later, and the reason says so.

Periods are calendar-aligned in the budget's time zone (`day`, `week` from
Monday, `month`), or `fixed` (since the sidecar started counting); a usage record
counts in the period it was decided in, and a new period starts from zero. Time
comes from the `now_ms` passed in and the records' own timestamps: this module
reads no clock. Must not import gRPC or the wire types (`faregate.v1`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from faregate.model import Budget, Snapshot, UsageRecord
from faregate.periods import period_window
from faregate.pricing import format_usd
from sidecar.decision import Candidate, RouteRequest
from sidecar.pressure import Pressure
from sidecar.snapshot_store import SnapshotSource

log = logging.getLogger(__name__)


def threshold_nanos(budget: Budget) -> int:
    """Spend at which `budget` presses: its lowest soft threshold of the limit, or the limit."""
    fraction = min(budget.soft_thresholds, default=1.0)
    exact = Decimal(str(fraction)) * budget.limit_nanos
    return int(exact.to_integral_value(rounding=ROUND_CEILING))


@dataclass(frozen=True, slots=True)
class _Scoped:
    budget: Budget
    threshold_nanos: int

    def covers(
        self, tenant: str, team: str, model: str, tier: str, labels: Mapping[str, str]
    ) -> bool:
        b = self.budget
        return (
            (not b.tenant or b.tenant == tenant)
            and (not b.team or b.team == team)
            and (not b.model or b.model == model)
            and (not b.tier or b.tier == tier)
            and all(labels.get(k) == v for k, v in b.labels.items())
        )


@dataclass(slots=True)
class _Tally:
    start_ms: int
    end_ms: int
    spent_nanos: int = 0


class LocalSpendPressure:
    """A `BudgetPressure` from this sidecar's own settled usage."""

    def __init__(self, snapshots: SnapshotSource) -> None:
        self._snapshots = snapshots
        self._tallies: dict[str, _Tally] = {}
        self._windows: dict[tuple[str, str, str], tuple[int, int]] = {}
        self._compiled_for: Snapshot | None = None
        self._by_capability: dict[str, tuple[_Scoped, ...]] = {}
        self._tiers: dict[str, str] = {}

    def _compile(self, snapshot: Snapshot) -> None:
        if snapshot is self._compiled_for:
            return
        scoped = [_Scoped(b, threshold_nanos(b)) for b in snapshot.budgets]
        self._by_capability = {
            c.name: tuple(s for s in scoped if s.budget.capability in ("", c.name))
            for c in snapshot.capabilities
        }
        self._tiers = {m.name: m.tier for m in snapshot.models}
        self._compiled_for = snapshot

    def _window(self, budget: Budget, at_ms: int) -> tuple[int, int]:
        key = (budget.name, budget.period, budget.time_zone)
        window = self._windows.get(key)
        if window is None or not window[0] <= at_ms < window[1]:
            window = period_window(budget.period, budget.time_zone, at_ms)
            self._windows[key] = window
        return window

    def spent(self, budget: Budget, now_ms: int) -> int:
        """What this sidecar has settled against `budget` in its current period."""
        tally = self._tallies.get(budget.name)
        if tally is None or not tally.start_ms <= now_ms < tally.end_ms:
            return 0
        return tally.spent_nanos

    def settled(self, record: UsageRecord) -> None:
        """Count a settled usage record against every budget now configured that covers it."""
        snapshot = self._snapshots.current
        if snapshot is None:
            return
        self._compile(snapshot)
        at_ms = record.decided_at_unix_ms
        tier = self._tiers.get(record.model, "")
        for scoped in self._by_capability.get(record.capability, ()):
            if not scoped.covers(record.tenant, record.team, record.model, tier, record.labels):
                continue
            start, end = period_window(scoped.budget.period, scoped.budget.time_zone, at_ms)
            tally = self._tallies.get(scoped.budget.name)
            if tally is None or start >= tally.end_ms:
                tally = self._tallies[scoped.budget.name] = _Tally(start, end)
            elif start < tally.start_ms:
                continue  # a late report from a period already closed
            tally.spent_nanos += record.cost_nanos

    def pressure(
        self, snapshot: Snapshot, request: RouteRequest, route: Candidate, now_ms: int
    ) -> Pressure | None:
        self._compile(snapshot)
        budgets = self._by_capability.get(request.capability)
        if not budgets:
            return None
        model = route.model
        for scoped in budgets:
            budget = scoped.budget
            tally = self._tallies.get(budget.name)
            if tally is None or tally.spent_nanos < scoped.threshold_nanos:
                continue
            start, end = self._window(budget, now_ms)
            if (tally.start_ms, tally.end_ms) != (start, end):
                continue  # spent in an earlier period; this one starts from zero
            labels = request.labels
            if not scoped.covers(request.tenant, request.team, model.name, model.tier, labels):
                continue
            return Pressure(budget.name, _reason(scoped, tally.spent_nanos))
        return None


def _reason(scoped: _Scoped, spent: int) -> str:
    budget = scoped.budget
    period = "so far" if budget.period == "fixed" else f"this {budget.period}"
    head = (
        f"budget {budget.name}: {format_usd(spent)} of {format_usd(budget.limit_nanos)} "
        f"settled here {period}"
    )
    if spent >= budget.limit_nanos:
        return head + ", at or over its limit (only a downgrade until budget leases enforce it)"
    share = min(budget.soft_thresholds, default=1.0)
    return head + f", past its {share:.0%} soft threshold"
