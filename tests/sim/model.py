"""A discrete-event simulation of budget leases: many sidecars, one control plane.

Real: every grant comes from `controlplane.allocation.allocate`; every admission,
settle, lease request, grant and close goes through one `sidecar.leases.LeaseBook` per
sidecar incarnation; forfeits come from `sidecar.lease_file.forfeits`.

Modelled here, small:
- `ControlPlane`: `controlplane.sql_leases` for one budget period. Per lease granted
  `g` (cumulative), applied `c`, state; committed `C`. Grants as `grant_lease` (an ended
  lease reopens holding nothing), usage as `_charge` (open: C += cost; ended: late;
  forfeited: absorbed first; offline: C += cost), closes as `_close` (clean: remainder
  returns; forfeit: added to C), expiry as `expire_leases` after TTL + margin (never
  within the margin of a restart). A batch applies once per (sidecar, incarnation, seq).
- `Sidecar`: the control link and usage journal around the book. The journal survives
  crashes; it seals records and closes into batches (incarnation, seq) while connected,
  drops a batch when ACKed, and each new stream resends every unACKed batch in order.
  A crash loses in-flight reports and the incarnation; the next one forfeits what the
  lease file lists. A clean restart settles in-flight calls as unreported and closes.
- A call (`Sidecar.admit`) reserves `w`, calls the model for a random latency (its
  money is spent whatever happens next), then is settled and journaled.
- `World`: the fake clock, the event queue and the network: per sidecar one ordered
  stream each way with random delays. Nothing is delivered while the control plane is
  down or the sidecar partitioned; a reset, an outage or a crash loses what is in
  flight on the stream; ACKs are dropped on purpose, so batches arrive twice.

Not modelled: the decision engine (a refused call is dropped: no downgrade or retry),
the report deadline, period rollover, several budgets per call, several control-plane
replicas, clock skew, disks that lose data.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from controlplane.allocation import Ask, BudgetState, Holding, allocate
from controlplane.leases import LeaseState, expiry_cutoff, lease_id
from faregate.budget_rules import is_offline_lease
from faregate.model import Budget, BudgetCharge, LeaseClose
from faregate.periods import period_key
from sidecar.lease_file import forfeits
from sidecar.leases import Grant, LeaseAsk, LeaseBook

USD = 1_000_000_000
START_MS = int(datetime(2026, 12, 10, tzinfo=UTC).timestamp() * 1000)  # mid-month: no rollover
TICK_MS = 500  # the link's lease poll and the journal's flush (0.25 s and 0.2 s for real)
SWEEP_MS = 5_000  # the control plane's expiry sweep
GRACE_MS = 2_000  # a clean shutdown waits this long for in-flight calls


@dataclass(frozen=True)
class Record:
    """A settled call's usage record (its id plays the ledger's decision id)."""

    rid: int
    cost: int
    charges: tuple[BudgetCharge, ...]


@dataclass
class CpLease:
    sidecar: str
    granted: int = 0
    applied: int = 0
    demand: int = 0
    expires_at: int = 0
    state: LeaseState = LeaseState.OPEN

    @property
    def held(self) -> int:
        return max(0, self.granted - self.applied) if self.state is LeaseState.OPEN else 0


class ControlPlane:
    """One budget period as `controlplane.sql_leases` keeps it."""

    def __init__(self, budget: Budget, ttl_ms: int, margin_ms: int) -> None:
        self.budget, self.ttl_ms, self.margin_ms = budget, ttl_ms, margin_ms
        self.leases: dict[str, CpLease] = {}
        self.committed = self.forfeited = self.late = self.expired = 0
        self.up, self.started_at = True, 0
        self.seen: set[tuple[str, str, int]] = set()
        self.applications: Counter[int] = Counter()  # record id -> times applied
        # Usage beyond its reservation, and offline usage: what may lift C + O over L.
        self.excess_applied = self.duplicates = self.steps = 0
        self.violations: list[str] = []

    @property
    def outstanding(self) -> int:
        return sum(lease.held for lease in self.leases.values())

    def _check(self, step: str, now: int) -> None:
        self.steps += 1
        total = self.committed + self.outstanding
        if total > self.budget.limit_nanos + self.excess_applied:
            self.violations.append(f"t={now} after {step}: C + O = {total}")

    def grant(self, sidecar: str, incarnation: str, ask: LeaseAsk, now: int) -> Grant:
        key = period_key(self.budget.period, self.budget.time_zone, START_MS + now)
        lid = lease_id(sidecar, incarnation, self.budget.name, key)
        mine = self.leases.get(lid)
        applied = mine.applied if mine is not None else 0
        granted = applied  # an ended lease reopens holding nothing
        if mine is not None and mine.state is LeaseState.OPEN:
            granted = max(mine.granted, applied)
        others = [
            Holding(lease.granted, lease.applied, lease.demand)
            for other, lease in self.leases.items()
            if other != lid and lease.state is LeaseState.OPEN
        ]
        state = BudgetState(self.budget.limit_nanos, self.committed, others)
        mine_ask = Ask(ask.requested_nanos, ask.demand_nanos_per_s, granted, applied)
        allocation = allocate(state, mine_ask)
        if mine is None:
            mine = self.leases[lid] = CpLease(sidecar)
        mine.granted = granted + allocation.delta_nanos
        mine.demand = ask.demand_nanos_per_s
        mine.expires_at, mine.state = now + self.ttl_ms, LeaseState.OPEN  # mid-month: TTL uncut
        self._check("grant", now)
        return Grant(
            self.budget.name,
            lid,
            mine.granted,
            self.ttl_ms,
            refresh_after_ms=max(1, self.ttl_ms // 3),
            period_key=key,
            budget_committed_nanos=self.committed,
            budget_limit_nanos=self.budget.limit_nanos,
            reason=allocation.reason(ask.requested_nanos),
        )

    def apply_batch(self, sidecar: str, key: tuple[str, int], entries: list[Any], now: int) -> None:
        if (sidecar, *key) in self.seen:
            self.duplicates += 1  # ACKed as a duplicate, changes nothing
            return
        self.seen.add((sidecar, *key))
        for record in (e for e in entries if isinstance(e, Record)):
            self.applications[record.rid] += 1
            for charge in record.charges:
                self._charge(charge, record.cost)
        for close in (e for e in entries if isinstance(e, LeaseClose)):
            self._close(sidecar, close)
        self._check("usage batch", now)

    def _charge(self, charge: BudgetCharge, cost: int) -> None:
        lease = self.leases.get(charge.lease_id)
        if is_offline_lease(charge.lease_id) or lease is None:
            self.committed += cost  # an offline allowance: committed, no lease
            self.excess_applied += cost
            return
        self.excess_applied += max(0, cost - charge.reserved_nanos)
        before = lease.applied
        lease.applied += cost
        if lease.state is LeaseState.OPEN:
            self.committed += cost
            return
        late = cost
        if lease.state is LeaseState.FORFEITED:  # the forfeit already counted it
            absorbed = min(cost, max(0, lease.granted - before))
            self.forfeited -= absorbed
            late -= absorbed
        self.committed += late
        self.late += late

    def _close(self, sidecar: str, close: LeaseClose) -> None:
        lease = self.leases.get(close.lease_id)
        if lease is None or lease.sidecar != sidecar or lease.state is not LeaseState.OPEN:
            return
        if close.forfeit:
            remainder = max(0, lease.granted - lease.applied)
            self.committed += remainder
            self.forfeited += remainder
            lease.state = LeaseState.FORFEITED
        else:
            lease.state = LeaseState.CLOSED  # its remainder returns

    def sweep(self, now: int) -> None:
        cutoff = expiry_cutoff(now, self.started_at, self.margin_ms)
        if cutoff is None:
            return
        for lease in self.leases.values():
            if lease.state is LeaseState.OPEN and lease.expires_at < cutoff:
                lease.state = LeaseState.EXPIRED
                self.expired += 1
        self._check("expiry", now)


@dataclass
class Journal:
    """The usage journal: on disk, so it survives crashes."""

    unsealed: list[Any] = field(default_factory=list)  # Records and LeaseCloses
    sealed: dict[tuple[str, int], list[Any]] = field(default_factory=dict)  # in seal order
    spent_by_lease: Counter[str] = field(default_factory=Counter)
    records: dict[int, Record] = field(default_factory=dict)  # every record ever journaled

    def append(self, entry: Any) -> None:
        self.unsealed.append(entry)
        if isinstance(entry, Record):
            self.records[entry.rid] = entry
            for charge in entry.charges:
                self.spent_by_lease[charge.lease_id] += entry.cost

    def closes(self) -> frozenset[str]:
        entries = [*self.unsealed, *(e for batch in self.sealed.values() for e in batch)]
        return frozenset(e.lease_id for e in entries if isinstance(e, LeaseClose))


class Sidecar:
    def __init__(self, sim: World, name: str) -> None:
        self.sim, self.name = sim, name
        self.generation, self.incarnation, self.seq = 0, "", 0
        self.book: LeaseBook | None = None
        self.draining = self.burst = False
        self.journal = Journal()
        self.lease_file: list[dict[str, str]] = []
        self.session, self.connected, self.partitioned = 0, False, False
        self.up_at = self.down_at = 0  # last arrival time each way: the streams are ordered
        self.sent: set[tuple[str, int]] = set()
        self.in_flight: dict[int, tuple[Any, int, int]] = {}  # call id -> holds, reserved, actual

    def start(self) -> None:
        self.generation += 1
        self.incarnation, self.seq, self.draining = f"{self.name}.{self.generation}", 0, False
        self.book = book = LeaseBook(self.incarnation)
        book.configure([self.sim.budget])
        book.on_need(lambda: self.sim.after(0, self.ask))
        spent = dict(self.journal.spent_by_lease)
        for close in forfeits(self.lease_file, self.journal.closes(), spent):
            self.journal.append(close)  # after every record of the lease: it is journaled
        self.lease_file = []  # the forfeits are journaled: the old leases are done
        if self.sim.cp.up:
            self.sim.after(self.sim.rng.uniform(100, 2_000), self.connect)
        self.sim.after(TICK_MS, self.tick, self.generation)

    def connect(self) -> None:
        if self.book is None or self.connected or self.partitioned or not self.sim.cp.up:
            return
        self.session, self.connected, self.sent = self.session + 1, True, set()
        self.book.forget_requests()
        self.ask()
        self.ship()  # every unACKed batch again, in order

    def disconnect(self) -> None:
        self.session, self.connected = self.session + 1, False

    def tick(self, generation: int) -> None:
        if generation != self.generation or self.book is None:
            return
        self.book.tick(START_MS + self.sim.now)
        self._journal_closes()
        self.ask()
        self.ship()
        self.sim.after(TICK_MS, self.tick, generation)

    def ask(self) -> None:
        if self.book is None or not self.connected or self.draining:
            return
        for ask in self.book.requests(self.sim.now, START_MS + self.sim.now):
            self.sim.send(self, True, self.sim.cp_grant, self, self.incarnation, ask)

    def ship(self) -> None:
        if not self.connected:
            return
        if self.journal.unsealed:
            self.seq += 1
            self.journal.sealed[(self.incarnation, self.seq)] = self.journal.unsealed
            self.journal.unsealed = []
        for key, entries in self.journal.sealed.items():
            if key not in self.sent:
                self.sent.add(key)
                self.sim.send(self, True, self.sim.cp_batch, self, key, entries)

    def acked(self, key: tuple[str, int]) -> None:
        self.journal.sealed.pop(key, None)

    def granted(self, grant: Grant) -> None:
        if self.book is not None:
            self.book.apply_grant(grant, self.sim.now, START_MS + self.sim.now)
            self._journal_closes()

    def _journal_closes(self) -> None:
        assert self.book is not None
        for close in self.book.take_closes():
            self.journal.append(close)
        # Written before the authority is used (sidecar/main.py `_leases_changed`).
        self.lease_file = [
            {"lease_id": v.lease_id, "budget": v.budget, "period_key": v.period_key}
            for v in self.book.leases(self.sim.now)
        ]

    def admit(self, reserved: int, actual: int) -> None:
        """A call reserving `reserved` that will cost `actual`, if the book admits it."""
        sim = self.sim
        if self.book is None or self.draining:
            return
        budget = sim.budget
        holds = self.book.reserve([(budget, reserved)], self.sim.now, START_MS + sim.now)
        if holds is None:
            self.book.note_need(budget, reserved)
            return
        sim.admitted += 1
        sim.spent += actual  # the model is called: the money is gone, reported or not
        sim.excess += max(0, actual - reserved)
        if is_offline_lease(holds[0].lease_id):
            sim.offline_spent += actual
        self.in_flight[sim.admitted] = (holds, reserved, actual)
        sim.after(sim.rng.uniform(300, 4_000), self.complete, sim.admitted)

    def complete(self, rid: int, unreported: bool = False) -> None:
        call = self.in_flight.pop(rid, None)
        if call is None or self.book is None:
            return  # lost in a crash, or settled unreported at a shutdown
        holds, reserved, actual = call
        cost = reserved if unreported else actual
        charges = self.book.settle(holds, cost, self.sim.now)
        self.journal.append(Record(rid, cost, charges))
        self._journal_closes()

    def crash(self) -> None:
        if self.book is None:
            return
        self.sim.crashes += 1
        self.sim.lost_reports += len(self.in_flight)  # the process that called the models
        self.sim.lost_spent += sum(actual for _, _, actual in self.in_flight.values())
        self.in_flight.clear()
        self.book = None  # the lease file stays: the next incarnation forfeits it
        self.disconnect()
        self.sim.after(self.sim.rng.uniform(1_000, 5_000), self.start)

    def shut_down(self) -> None:
        if self.book is None or self.draining:
            return
        self.sim.restarts += 1
        self.draining = True  # no new calls; in-flight ones may still report
        self.sim.after(GRACE_MS, self._stop, self.generation)

    def _stop(self, generation: int) -> None:
        if generation == self.generation and self.book is not None:
            for rid in list(self.in_flight):  # settled at their reservation (main.py)
                self.complete(rid, unreported=True)
            self.book.close_all("sidecar shutting down")
            self._journal_closes()
            self.ship()  # its last chance to send the closes; the journal keeps them anyway
            self.book = None
            self.disconnect()
            self.sim.after(self.sim.rng.uniform(1_000, 5_000), self.start)


class World:
    """The fake clock and its event queue, the network, and what a run measures."""

    def __init__(
        self, seed: int, budget: Budget, sidecars: int, ttl_ms: int, margin_ms: int, ack_loss: float
    ) -> None:
        self.rng = random.Random(seed)
        self._queue: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self.now = self._n = 0  # the fake clock (ms) and a tie-breaker for the queue
        self.budget, self.ack_loss = budget, ack_loss
        self.cp = ControlPlane(budget, ttl_ms, margin_ms)
        self.sidecars = [Sidecar(self, f"sc-{i:02d}") for i in range(sidecars)]
        self.offered = self.admitted = self.lost_reports = self.crashes = self.restarts = 0
        self.demand = self.spent = self.excess = self.offline_spent = self.lost_spent = 0

    def after(self, delay: float, fn: Callable[..., None], *args: Any) -> None:
        heapq.heappush(self._queue, (self.now + delay, self._n, fn, args))
        self._n += 1

    def run_until(self, end_ms: int) -> None:
        while self._queue and self._queue[0][0] <= end_ms:
            at, _, fn, args = heapq.heappop(self._queue)
            self.now = int(at)
            fn(*args)

    def send(self, sidecar: Sidecar, up: bool, handler: Callable[..., None], *args: Any) -> None:
        """On `sidecar`'s stream, to the control plane (`up`) or from it."""
        at = max(sidecar.up_at if up else sidecar.down_at, self.now + self.rng.uniform(5, 80))
        sidecar.up_at, sidecar.down_at = (at, sidecar.down_at) if up else (sidecar.up_at, at)
        self.after(at - self.now, self._deliver, sidecar, sidecar.session, handler, args)

    def _deliver(
        self, sidecar: Sidecar, session: int, handler: Callable[..., None], args: tuple[Any, ...]
    ) -> None:
        if self.cp.up and sidecar.session == session and not sidecar.partitioned:
            handler(*args)

    def cp_grant(self, sidecar: Sidecar, incarnation: str, ask: LeaseAsk) -> None:
        grant = self.cp.grant(sidecar.name, incarnation, ask, self.now)
        self.send(sidecar, False, sidecar.granted, grant)

    def cp_batch(self, sidecar: Sidecar, key: tuple[str, int], entries: list[Any]) -> None:
        self.cp.apply_batch(sidecar.name, key, entries, self.now)
        if self.rng.random() >= self.ack_loss:  # else the ACK is lost on purpose
            self.send(sidecar, False, sidecar.acked, key)
