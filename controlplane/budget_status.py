"""Where a budget stands in its current period, as `faregate budgets` shows it.

Combines a budget's configuration (the snapshot's `Budget`), its totals in the store
(`controlplane.leases.BudgetTotals`) and the ledger's spend over the last hour into
one `BudgetStatus`: limit, committed, outstanding, remaining, burn rate and when, at
that rate, the budget runs out.

Projected exhaustion is when committed spend reaches the limit at the current burn
rate: `now + (limit - committed) / burn`. Outstanding grants are not subtracted:
they are authority to spend, which the burn rate itself will turn into committed
spend, so counting them would bring the projection forward by money not yet spent.
It is 0 when nothing is being spent or the budget lasts past the period's end, and
`now` once committed spend has reached the limit.

Pure: must not import grpc, sqlalchemy or `faregate.v1`, nor read a clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.leases import BudgetTotals, soft_threshold_crossed
from faregate.model import Budget
from faregate.periods import period_window

HOUR_MS = 3_600_000
BURN_WINDOW_MS = HOUR_MS


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    name: str
    period_key: str
    limit_nanos: int
    committed_nanos: int
    outstanding_nanos: int
    remaining_nanos: int  # limit - committed - outstanding: what no lease holds
    forfeited_nanos: int
    late_nanos: int
    burn_rate_nanos_per_hour: int
    projected_exhaustion_unix_ms: int
    mode: str
    offline_policy: str
    soft_threshold_crossed: bool
    scope: str
    open_leases: int
    period_end_unix_ms: int  # 0: the period never ends (`fixed`)


def scope_text(budget: Budget) -> str:
    """What the budget covers, e.g. `tenant=acme team=risk`; `all` when unscoped."""
    parts = [
        f"{key}={value}"
        for key, value in (
            ("tenant", budget.tenant),
            ("team", budget.team),
            ("capability", budget.capability),
            ("model", budget.model),
            ("tier", budget.tier),
        )
        if value
    ]
    parts.extend(f"{key}={value}" for key, value in sorted(budget.labels.items()))
    return " ".join(parts) or "all"


def projected_exhaustion(
    limit_nanos: int, committed_nanos: int, burn_per_hour: int, now_ms: int, period_end_ms: int
) -> int:
    """When committed spend reaches the limit at `burn_per_hour` (0: not this period)."""
    left = limit_nanos - committed_nanos
    if left <= 0:
        return now_ms
    if burn_per_hour <= 0:
        return 0
    at = now_ms - (-left * HOUR_MS // burn_per_hour)  # rounded up: not before it happens
    return at if at < period_end_ms else 0


def budget_status(
    budget: Budget, totals: BudgetTotals, burn_window_nanos: int, now_ms: int
) -> BudgetStatus:
    """`burn_window_nanos`: the budget's spend reported in the last `BURN_WINDOW_MS`."""
    _, period_end = period_window(budget.period, budget.time_zone, now_ms)
    burn = burn_window_nanos * HOUR_MS // BURN_WINDOW_MS
    committed, outstanding = totals.committed_nanos, totals.outstanding_nanos
    return BudgetStatus(
        name=budget.name,
        period_key=totals.period_key,
        limit_nanos=budget.limit_nanos,
        committed_nanos=committed,
        outstanding_nanos=outstanding,
        remaining_nanos=budget.limit_nanos - committed - outstanding,
        forfeited_nanos=totals.forfeited_nanos,
        late_nanos=totals.late_nanos,
        burn_rate_nanos_per_hour=burn,
        projected_exhaustion_unix_ms=projected_exhaustion(
            budget.limit_nanos, committed, burn, now_ms, period_end
        ),
        mode=budget.mode,
        offline_policy=budget.offline_policy,
        soft_threshold_crossed=soft_threshold_crossed(budget, committed),
        scope=scope_text(budget),
        open_leases=totals.open_leases,
        period_end_unix_ms=0 if budget.period == "fixed" else period_end,
    )
