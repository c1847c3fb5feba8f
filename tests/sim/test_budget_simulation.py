"""Budgets under load, outages and crashes: the bounds of docs/budgets.md, measured.

Each run (`scenario.py`, over the parts in `model.py`) drives many sidecars, each with
a real `LeaseBook`, against a model of the control plane whose grants come from the
real allocator, with bursty demand about three times the budget. Computed from each run:

1. strict + deny: real spend (every admitted call's actual cost, reported or lost in a
   crash) never exceeds the limit, and at least 90% of it is used;
2. C + O <= L after every control-plane step (strict); with relaxations, C + O exceeds
   L by at most the excess usage applied so far;
3. estimate: overshoot <= the sum over admitted calls of max(0, actual - reserved);
4. allowance: overshoot <= offline_allowance x sidecars per outage, the bound of
   docs/budgets.md ("Quantities"), summed over the run's outages;
5. every journaled usage record is applied exactly once, though batches are resent
   (ACKs are dropped on purpose) and arrive more than once.

`pytest tests/sim -s` prints one line per run.
"""

from __future__ import annotations

from collections import Counter
from functools import cache

import pytest

from tests.sim.model import USD
from tests.sim.scenario import Scenario, Sim

SEEDS = [1, 2, 3, 4, 5]
SIZES = [3, 20]
ALLOWANCE_NANOS = USD // 2


def strict(seed: int, n: int) -> Scenario:
    return Scenario(seed, n)


def estimate(seed: int, n: int) -> Scenario:
    # Calls cost about twice as much as strict ones: a larger budget keeps demand ~3x it.
    # No hard crash: a forfeit strands far more than the excess the overshoot is made of.
    return Scenario(seed, n, mode="estimate", limit_per_sidecar_nanos=16 * USD, crashes=0)


def crashy(seed: int, n: int) -> Scenario:
    # Strict and deny with many crashes: never an overshoot, whatever the forfeits strand.
    return Scenario(seed, n, crashes=max(3, n // 2))


def allowance(seed: int, n: int) -> Scenario:
    # Outages longer than the lease TTL (30 s): leases lapse and the allowance is used.
    return Scenario(
        seed,
        n,
        offline_policy="allowance",
        offline_allowance_nanos=ALLOWANCE_NANOS,
        offline_max_duration_ms=60_000,
        outage_ms=(45_000, 90_000),
    )


def partition(seed: int, n: int) -> Scenario:
    # One sidecar cannot reach a control plane that stays up for longer than the TTL
    # plus the expiry margin (30 s + 60 s): its lease expires while it still holds it.
    return Scenario(
        seed, n, partition_ms=150_000, outages=0, crashes=0, clean_restarts_per_sidecar=0
    )


KINDS = {
    "strict": strict,
    "crashy": crashy,
    "estimate": estimate,
    "allowance": allowance,
    "partition": partition,
}
CHECKED = ["strict", "crashy", "estimate", "allowance"]


def bound(sim: Sim) -> int:
    s = sim.scenario
    if s.mode == "estimate":
        return sim.excess
    if s.offline_policy == "allowance":
        return s.offline_allowance_nanos * s.sidecars * len(sim.outages)
    return 0


@cache
def run(kind: str, seed: int, n: int) -> Sim:
    sim = Sim(KINDS[kind](seed, n)).run()
    limit = sim.budget.limit_nanos
    print(
        f"\n{kind:9} seed={seed} n={n:2}: limit ${limit / USD:.2f} spent ${sim.spent / USD:.2f}"
        f" ({100 * sim.spent / limit:.2f}%) demand {sim.demand / limit:.1f}x"
        f" overshoot ${max(0, sim.spent - limit) / USD:.4f}"
        f" bound ${bound(sim) / USD:.4f} | admitted {sim.admitted}/{sim.offered}"
        f" crashes {sim.crashes} restarts {sim.restarts} lost reports {sim.lost_reports}"
        f" forfeited ${sim.cp.forfeited / USD:.2f} expired {sim.cp.expired}"
        f" late ${sim.cp.late / USD:.4f} offline ${sim.offline_spent / USD:.4f}"
        f" duplicates {sim.cp.duplicates}"
    )
    return sim


def overshoot(sim: Sim) -> int:
    return sim.spent - sim.budget.limit_nanos


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("seed", SEEDS)
def test_strict_deny_never_overshoots_and_uses_the_budget(seed: int, n: int) -> None:
    sim = run("strict", seed, n)
    assert sim.crashes >= 1 and len(sim.outages) >= 1
    assert sim.demand > 2.5 * sim.budget.limit_nanos  # demand far above the budget
    assert sim.spent <= sim.budget.limit_nanos  # overshoot exactly 0
    assert sim.spent >= 0.9 * sim.budget.limit_nanos


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("seed", SEEDS)
def test_strict_deny_never_overshoots_however_many_crashes(seed: int, n: int) -> None:
    sim = run("crashy", seed, n)
    assert sim.crashes >= 3 and sim.lost_reports > 0
    assert sim.spent <= sim.budget.limit_nanos
    # What is not spent is what forfeits stranded (less the lost calls' cost, which
    # they cover), and a little left in leases too small for any call that came.
    stranded = sim.cp.forfeited - sim.lost_spent
    assert sim.budget.limit_nanos - sim.spent <= stranded + sim.budget.limit_nanos // 100


@pytest.mark.parametrize("kind", CHECKED)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("seed", SEEDS)
def test_committed_plus_outstanding_within_the_limit_after_every_step(
    kind: str, seed: int, n: int
) -> None:
    sim = run(kind, seed, n)
    assert sim.cp.steps > 100
    # Strict and deny: nothing may lift C + O above L, the invariant is exact. Usage
    # beyond its reservation (estimate) and offline usage (allowance) may lift it by
    # as much as they add, and by no more.
    assert sim.cp.violations == []
    if kind in ("strict", "crashy"):
        assert sim.cp.excess_applied == 0


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("seed", SEEDS)
def test_estimate_overshoot_within_the_excess_of_actual_over_reserved(seed: int, n: int) -> None:
    sim = run("estimate", seed, n)
    assert overshoot(sim) <= sim.excess


@pytest.mark.parametrize("n", SIZES)
def test_estimate_overshoot_happens(n: int) -> None:
    assert any(overshoot(run("estimate", seed, n)) > 0 for seed in SEEDS)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("seed", SEEDS)
def test_allowance_overshoot_within_allowance_per_sidecar_per_outage(seed: int, n: int) -> None:
    sim = run("allowance", seed, n)
    assert all(end - start > sim.scenario.ttl_ms for start, end in sim.outages)
    assert sim.offline_spent > 0  # the allowance was used
    assert overshoot(sim) <= ALLOWANCE_NANOS * n * len(sim.outages)


@pytest.mark.parametrize("n", SIZES)
def test_allowance_overshoot_happens(n: int) -> None:
    assert any(overshoot(run("allowance", seed, n)) > 0 for seed in SEEDS)


@pytest.mark.parametrize("kind", CHECKED)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("seed", SEEDS)
def test_usage_is_applied_exactly_once(kind: str, seed: int, n: int) -> None:
    sim = run(kind, seed, n)
    cp = sim.cp
    records = {rid: r for sc in sim.sidecars for rid, r in sc.journal.records.items()}
    assert cp.duplicates > 0  # resent batches did arrive twice
    assert len(records) == sim.admitted - sim.lost_reports
    assert set(cp.applications) == set(records)
    assert set(cp.applications.values()) == {1}
    by_lease: Counter[str] = Counter()
    for record in records.values():
        for charge in record.charges:
            by_lease[charge.lease_id] += record.cost
    for lid, lease in cp.leases.items():
        assert lease.applied == by_lease[lid], lid
    # C is every applied cost once, plus forfeited remainders not yet absorbed by usage.
    assert cp.committed == sum(r.cost for r in records.values()) + cp.forfeited


@pytest.mark.xfail(
    strict=True,
    reason="expiry returns g - c while usage of the lease is still in the cut-off sidecar's "
    "journal (or in flight): that money is spent twice when the journal is delivered. "
    "(Before sidecar/leases.py took the control plane's grant as the truth, the reopened "
    "lease also kept its old grant in the LeaseBook: ~L/10 of overshoot.)",
)
@pytest.mark.parametrize("seed", [7, 9, 10])  # the others return when the budget has room
def test_strict_deny_survives_a_partition_longer_than_the_expiry_margin(seed: int) -> None:
    sim = run("partition", seed, 20)
    assert sim.cp.expired >= 1
    assert sim.spent <= sim.budget.limit_nanos
    assert sim.cp.violations == []
