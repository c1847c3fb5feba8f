"""Budget rules both sides share: the soft threshold in nanos, offline lease ids."""

from __future__ import annotations

from faregate.budget_rules import OFFLINE_LEASE_PREFIX, is_offline_lease, soft_threshold_nanos
from faregate.model import Budget


def test_soft_threshold_is_exact_in_nanos_and_rounds_up() -> None:
    assert soft_threshold_nanos(Budget("b", 1_000_000_001, soft_thresholds=(0.8,))) == 800_000_001
    assert soft_threshold_nanos(Budget("b", 10, soft_thresholds=(0.9, 0.5))) == 5  # the lowest
    assert soft_threshold_nanos(Budget("b", 10)) == 10  # no soft threshold: the limit


def test_offline_lease_ids() -> None:
    assert is_offline_lease(OFFLINE_LEASE_PREFIX + "inc-1")
    assert not is_offline_lease("ls-3f2a")
