"""Budget rules both sides must apply identically.

The control plane signals a soft threshold to sidecars and the sidecar estimates it
locally between grants; both use `soft_threshold_nanos`, so they can never disagree
by rounding. Spend under an offline allowance is charged through a pseudo-lease
whose id starts with `OFFLINE_LEASE_PREFIX`. Pure: must not import gRPC, SQLAlchemy
or the wire types.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

from faregate.model import Budget

OFFLINE_LEASE_PREFIX = "offline:"


def soft_threshold_nanos(budget: Budget) -> int:
    """Spend at which `budget` presses: its lowest soft threshold times the limit
    (rounded up to a whole nano), or the limit when it has no soft threshold."""
    if not budget.soft_thresholds:
        return budget.limit_nanos
    # Thresholds are written as short decimals (0.8); str() recovers that text exactly.
    exact = Decimal(str(min(budget.soft_thresholds))) * budget.limit_nanos
    return int(exact.to_integral_value(rounding=ROUND_CEILING))


def is_offline_lease(lease_id: str) -> bool:
    return lease_id.startswith(OFFLINE_LEASE_PREFIX)
