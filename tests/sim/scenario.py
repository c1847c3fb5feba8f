"""The runs of the budget simulation: a `Scenario` and the `Sim` that plays it.

`model.py` holds the parts (control plane, sidecars, network, clock); this schedules
what happens to them: per sidecar, bursty demand (Poisson arrivals switching between
a quiet and a burst rate); control-plane outages, hard crashes and clean restarts in
the part of the run where the budget is being spent; random stream resets; optionally
one sidecar partitioned from a control plane that stays up; the expiry sweep; and a
drain at the end (no demand, one last reconnect) so every journal is delivered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from faregate.model import Budget
from tests.sim.model import SWEEP_MS, USD, Sidecar, World


@dataclass(frozen=True)
class Scenario:
    seed: int
    sidecars: int
    mode: str = "strict"  # or "estimate"
    offline_policy: str = "deny"  # or "allowance"
    offline_allowance_nanos: int = 0
    offline_max_duration_ms: int = 0
    limit_per_sidecar_nanos: int = 8 * USD
    duration_ms: int = 24 * 60_000  # demand arrives for this long (~3x the budget)
    drain_ms: int = 60_000  # then no demand, no outage: every journal empties
    ttl_ms: int = 30_000
    expiry_margin_ms: int = 60_000  # shorter than the 10 min default, so expiry happens
    outages: int = 2
    outage_ms: tuple[int, int] = (5_000, 20_000)
    crashes: int = 1
    clean_restarts_per_sidecar: float = 0.1  # rounded up
    # Outages, crashes and restarts fall in this part of the run: while the budget is spent.
    trouble: tuple[float, float] = (0.05, 0.4)
    # One sidecar cut off from a control plane that stays up (no restart, so it expires).
    partition_ms: int = 0
    ack_loss: float = 0.2
    resets_per_sidecar_min: float = 1.0
    worst_case_usd: tuple[float, float] = (0.001, 0.10)  # w, log-uniform
    burst_rate_per_s: float = 4.0
    quiet_rate_per_s: float = 0.5


class Sim(World):
    def __init__(self, scenario: Scenario) -> None:
        budget = Budget(
            "sim",
            scenario.limit_per_sidecar_nanos * scenario.sidecars,
            "month",
            mode=scenario.mode,
            offline_policy=scenario.offline_policy,
            offline_allowance_nanos=scenario.offline_allowance_nanos,
            offline_max_duration_ms=scenario.offline_max_duration_ms,
        )
        super().__init__(
            scenario.seed,
            budget,
            scenario.sidecars,
            scenario.ttl_ms,
            scenario.expiry_margin_ms,
            scenario.ack_loss,
        )
        self.scenario = scenario
        self.outages: list[tuple[int, int]] = []

    def run(self) -> Sim:
        s, rng = self.scenario, self.rng
        for sidecar in self.sidecars:
            self.after(0, sidecar.start)
            self.after(rng.uniform(0, 1_000), self._arrive, sidecar)
            self.after(0, self._switch, sidecar)
        first, last = (int(f * s.duration_ms) for f in s.trouble)
        span = (last - first) // max(1, s.outages)
        for k in range(s.outages):
            length = rng.randint(*s.outage_ms)
            start = first + k * span + rng.randint(0, max(0, span - length))
            self.outages.append((start, start + length))
            self.after(start, self._outage, True)
            self.after(start + length, self._outage, False)
        restarts = math.ceil(s.clean_restarts_per_sidecar * s.sidecars)
        for k in range(s.crashes + restarts):
            victim = rng.choice(self.sidecars)
            at = rng.uniform(first, last)
            self.after(at, victim.crash if k < s.crashes else victim.shut_down)
        mean_reset = 60_000 / s.resets_per_sidecar_min
        for sidecar in self.sidecars:
            self.after(rng.expovariate(1 / mean_reset), self._reset, sidecar, mean_reset)
        self.after(SWEEP_MS, self._sweep)
        if s.partition_ms:
            self.after(first, self._partition, self.sidecars[0], True)
            self.after(first + s.partition_ms, self._partition, self.sidecars[0], False)
        for sidecar in self.sidecars:  # at the end, reconnect once more: resend what is left
            self.after(s.duration_ms + s.drain_ms // 2, sidecar.disconnect)
            self.after(s.duration_ms + s.drain_ms // 2 + 1, sidecar.connect)
        self.run_until(s.duration_ms + s.drain_ms)
        return self

    def _switch(self, sidecar: Sidecar) -> None:
        sidecar.burst = not sidecar.burst
        mean = 10_000 if sidecar.burst else 20_000
        self.after(self.rng.expovariate(1 / mean), self._switch, sidecar)

    def _outage(self, begins: bool) -> None:
        self.cp.up = not begins
        for sidecar in self.sidecars:
            if begins:
                sidecar.disconnect()
            elif sidecar.book is not None:
                self.after(self.rng.uniform(100, 2_000), sidecar.connect)
        if not begins:
            self.cp.started_at = self.now  # a restarted control plane waits a margin to expire

    def _partition(self, sidecar: Sidecar, begins: bool) -> None:
        sidecar.partitioned = begins
        if begins:
            sidecar.disconnect()
        else:
            self.after(self.rng.uniform(100, 2_000), sidecar.connect)

    def _reset(self, sidecar: Sidecar, mean: float) -> None:
        if sidecar.connected and self.now < self.scenario.duration_ms:
            sidecar.disconnect()
            self.after(self.rng.uniform(50, 500), sidecar.connect)
        self.after(self.rng.expovariate(1 / mean), self._reset, sidecar, mean)

    def _sweep(self) -> None:
        if self.cp.up:
            self.cp.sweep(self.now)
        self.after(SWEEP_MS, self._sweep)

    # -- demand --------------------------------------------------------------------

    def _arrive(self, sidecar: Sidecar) -> None:
        s = self.scenario
        rate = s.burst_rate_per_s if sidecar.burst else s.quiet_rate_per_s
        self.after(self.rng.expovariate(rate) * 1_000, self._arrive, sidecar)
        if self.now < s.duration_ms:
            reserved, actual = self.draw_call()
            self.offered += 1
            self.demand += actual
            sidecar.admit(reserved, actual)

    def draw_call(self) -> tuple[int, int]:
        """(reservation, actual cost) in nanos."""
        low, high = self.scenario.worst_case_usd
        usd = math.exp(self.rng.uniform(math.log(low), math.log(high)))
        reserved = int(usd * USD)
        if self.scenario.mode == "estimate":
            # The estimate is input + half the output cap, with a cap of 3x the input;
            # a call uses 30% to 100% of its cap: actual / estimate in [0.76, 1.6].
            used = self.rng.uniform(0.3, 1.0)
            return reserved, int(reserved * (1 + 3 * used) / 2.5)
        return reserved, int(reserved * self.rng.uniform(0.1, 1.0))
