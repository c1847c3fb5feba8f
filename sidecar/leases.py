"""The lease book: this sidecar's authority to spend each budget, and what it has used.

Per budget the book holds the current lease (docs/budgets.md, "Leases over Sync"):
its id and period key, `granted` (cumulative, it only grows), `spent` (settled
usage charged through it) and `reserved` (calls admitted, not yet reported). A
call is admitted on a lease only if `spent + reserved + w <= granted`, for every
budget that covers it at once (`reserve` is all-or-nothing), so with worst-case
reservations this sidecar never spends authority it was not given.

Time: a lease stops admitting at its local deadline, its receipt time on the
monotonic clock plus `ttl_ms` less a skew margin, whatever the wall clocks say;
its calendar period (wall clock) bounds it too. Once the deadline passes the
budget's offline policy applies: `deny` admits nothing; `allowance` admits up to
`offline_allowance_nanos` for at most `offline_max_duration_ms` after the lapse,
charged with lease id `offline:<incarnation>`. A grant ends the outage.

Leases are closed (`LeaseClose`, final spent) at period rollover (a grant for a
new period key replaces the lease), when their budget leaves the configuration,
and at shutdown, each only once no reservation on it is in flight, so the close
follows every usage record of the lease in the journal. A lease that merely
lapses is not closed: the control plane keeps one lease id per sidecar, budget
and period and reopens it on the next request, so a close racing that request
could end a lease in use; the control plane expires lapsed leases itself.

What to ask for (`requests`): at first need, when what is left falls below a
quarter of the last top-up or twice the largest recent need, when the grant's
refresh time comes, or when a call did not fit; the amount asked tops the lease up
to about a minute of recent spend and at least four times the largest recent
need (the first ask: at least a tenth of the limit).

Pure: plain Python over frozen values; time is passed in (`mono` for TTLs and
demand, `now_ms` for periods). Must not import gRPC or the wire types.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from faregate.budget_rules import OFFLINE_LEASE_PREFIX, soft_threshold_nanos
from faregate.model import Budget, BudgetCharge, LeaseClose, Snapshot
from faregate.periods import period_key, period_window
from sidecar.budget_scope import covers
from sidecar.decision import Candidate, RouteRequest
from sidecar.pressure import Pressure

log = logging.getLogger(__name__)

ALLOWANCE = "allowance"
# An unanswered request is asked again after this long (the stream may have dropped it).
REQUEST_RETRY_MS = 2_000
MAX_SKEW_MARGIN_MS = 1_000
TARGET_HOLD_MS = 60_000
DEMAND_WINDOW_MS = 30_000
NEED_MULTIPLE = 4
INITIAL_FRACTION = 10  # first ask: a tenth of the limit (the allocator caps it anyway)
LOW_WATER_DIVISOR = 4


class Verdict(StrEnum):
    FITS = "fits"
    SHORT = "short"  # a lease, but not enough left on it for this call
    NO_LEASE = "no-lease"  # never granted in this period yet
    EXPIRED = "lease-expired"  # lapsed, and the offline policy admits nothing more


@dataclass(frozen=True, slots=True)
class Hold:
    """One budget's part of a call's reservation."""

    budget: str
    lease_id: str
    period_key: str
    amount_nanos: int


Reservation = tuple[Hold, ...]


@dataclass(frozen=True, slots=True)
class Check:
    budget: str
    verdict: Verdict
    left_nanos: int = 0
    hold: Hold | None = None


@dataclass(frozen=True, slots=True)
class Grant:
    budget: str
    lease_id: str
    granted_nanos: int
    ttl_ms: int
    refresh_after_ms: int = 0
    period_key: str = ""
    soft_threshold_crossed: bool = False
    budget_committed_nanos: int = 0
    budget_limit_nanos: int = 0
    reason: str = ""


@dataclass(frozen=True, slots=True)
class LeaseAsk:
    budget: str
    requested_nanos: int
    spent_nanos: int
    reserved_nanos: int
    current_lease_id: str
    demand_nanos_per_s: int
    period_key: str


@dataclass(frozen=True, slots=True)
class LeaseView:
    """One lease as operators and the lease file see it."""

    budget: str
    lease_id: str
    period_key: str
    granted_nanos: int
    spent_nanos: int
    reserved_nanos: int
    lapsed: bool


@dataclass(slots=True)
class _Lease:
    lease_id: str
    budget: str
    period_key: str
    window: tuple[int, int]
    granted: int = 0
    spent: int = 0
    reserved: int = 0
    deadline: int = 0  # monotonic ms: no admission from here on
    refresh_at: int = 0
    last_topup: int = 0
    soft: bool = False
    committed_at_grant: int = 0
    spent_at_grant: int = 0
    retiring: str = ""  # why it will be closed once nothing is reserved on it

    @property
    def left(self) -> int:
        return self.granted - self.spent - self.reserved


@dataclass(slots=True)
class _Offline:
    """Spend under an allowance since the current lease lapsed (one outage)."""

    lapsed_at: int
    spent: int = 0
    reserved: int = 0


@dataclass(slots=True)
class _Account:
    budget: Budget
    lease: _Lease | None = None
    offline: _Offline | None = None
    asked_at: int | None = None  # monotonic ms of the unanswered request
    asked_nanos: int = 0
    wants: bool = True  # a request is due regardless of low water (first need, refusal)
    largest_need: int = 0
    short_answer: bool = False  # the last grant gave less than asked: nothing more to get
    answered_at: int = 0
    demand_start: int | None = None
    demand_current: int = 0
    demand_previous: int = 0


def skew_margin_ms(ttl_ms: int) -> int:
    """Clocks drift and messages queue: stop a little before the control plane would."""
    return min(MAX_SKEW_MARGIN_MS, ttl_ms // 10)


class LeaseBook:
    def __init__(self, incarnation: str) -> None:
        self.offline_lease_id = OFFLINE_LEASE_PREFIX + incarnation
        self._accounts: dict[str, _Account] = {}
        self._by_id: dict[str, _Lease] = {}
        self._closes: list[LeaseClose] = []
        self._closed_spent: dict[str, int] = {}
        self._on_need: Callable[[], None] | None = None

    def on_need(self, callback: Callable[[], None]) -> None:
        """Call `callback` when a budget newly wants a request (first need, refusal)."""
        self._on_need = callback

    def _want(self, account: _Account) -> None:
        if not account.wants:
            account.wants = True
            if self._on_need is not None:
                self._on_need()

    # -- configuration -------------------------------------------------------------

    def configure(self, budgets: Iterable[Budget]) -> None:
        """Track these budgets (asking for a lease on each eagerly); retire the others."""
        wanted = {b.name: b for b in budgets}
        for name, account in list(self._accounts.items()):
            if name not in wanted:
                self._retire(account, "budget removed from the configuration")
                del self._accounts[name]
        for budget in wanted.values():
            fresh = budget.name not in self._accounts
            self._account(budget).budget = budget
            if fresh and self._on_need is not None:
                self._on_need()  # ask for every new budget's lease eagerly

    def _account(self, budget: Budget) -> _Account:
        account = self._accounts.get(budget.name)
        if account is None:
            account = self._accounts[budget.name] = _Account(budget)
        return account

    # -- admission -----------------------------------------------------------------

    def check(self, budget: Budget, amount: int, mono: int, now_ms: int) -> Check:
        """Could a call reserving `amount` from `budget` be admitted now? No side effects."""
        account = self._accounts.get(budget.name)
        lease = account.lease if account is not None else None
        if account is None or lease is None or not lease.window[0] <= now_ms < lease.window[1]:
            return Check(budget.name, Verdict.NO_LEASE)
        if mono < lease.deadline:
            left = lease.left
            if amount <= left:
                hold = Hold(budget.name, lease.lease_id, lease.period_key, amount)
                return Check(budget.name, Verdict.FITS, left, hold)
            return Check(budget.name, Verdict.SHORT, left)
        if budget.offline_policy != ALLOWANCE:
            return Check(budget.name, Verdict.EXPIRED)
        if mono >= lease.deadline + budget.offline_max_duration_ms:
            return Check(budget.name, Verdict.EXPIRED)
        offline = account.offline
        used = 0
        if offline is not None:
            used = offline.reserved + (offline.spent if offline.lapsed_at == lease.deadline else 0)
        left = budget.offline_allowance_nanos - used
        if amount <= left:
            hold = Hold(budget.name, self.offline_lease_id, lease.period_key, amount)
            return Check(budget.name, Verdict.FITS, left, hold)
        return Check(budget.name, Verdict.SHORT, left)

    def take(self, holds: Iterable[Hold], mono: int) -> None:
        """Reserve holds that `check` just answered FITS for (same call, nothing between)."""
        for hold in holds:
            account = self._accounts[hold.budget]
            if hold.lease_id == self.offline_lease_id:
                lease = account.lease
                assert lease is not None
                offline = account.offline
                if offline is None or offline.lapsed_at != lease.deadline:
                    # A new outage: its allowance starts afresh; holds still in flight
                    # from an earlier one keep counting against it.
                    carried = offline.reserved if offline is not None else 0
                    offline = account.offline = _Offline(lease.deadline, reserved=carried)
                offline.reserved += hold.amount_nanos
            else:
                self._by_id[hold.lease_id].reserved += hold.amount_nanos
            account.largest_need = max(account.largest_need, hold.amount_nanos)

    def reserve(
        self, amounts: Iterable[tuple[Budget, int]], mono: int, now_ms: int
    ) -> Reservation | None:
        """Reserve from every budget at once, or from none: a call must fit them all."""
        holds = []
        for budget, amount in amounts:
            answer = self.check(budget, amount, mono, now_ms)
            if answer.hold is None:
                return None
            holds.append(answer.hold)
        self.take(holds, mono)
        return tuple(holds)

    def note_need(self, budget: Budget, amount: int) -> None:
        """A call needed `amount` and did not fit (or found no lease): ask soon."""
        account = self._account(budget)
        self._want(account)
        account.largest_need = max(account.largest_need, amount)

    def topping_up(self, budget: str) -> bool:
        """Might a request bring more soon? False once the control plane said no more."""
        account = self._accounts.get(budget)
        return account is not None and not account.short_answer

    def soft_pressure(self, budget: Budget) -> str:
        """Why `budget` asks for cheaper routes, or "" when it does not."""
        account = self._accounts.get(budget.name)
        lease = account.lease if account is not None else None
        if lease is None:
            return ""
        if lease.soft:
            return f"budget {budget.name}: past its soft threshold (control plane)"
        if not budget.soft_thresholds:
            return ""
        # Committed when the grant was made, plus what this sidecar settled since.
        estimate = lease.committed_at_grant + lease.spent - lease.spent_at_grant
        if estimate >= soft_threshold_nanos(budget):
            share = min(budget.soft_thresholds)
            return f"budget {budget.name}: about {estimate} nanos committed, past {share:.0%}"
        return ""

    def pressure(
        self, snapshot: Snapshot, request: RouteRequest, route: Candidate, now_ms: int
    ) -> Pressure | None:
        """`BudgetPressure`: the first covering budget past its soft threshold, if any."""
        if not self._accounts:
            return None
        model = route.model
        for budget in snapshot.budgets:
            if not covers(
                budget,
                request.tenant,
                request.team,
                request.capability,
                model.name,
                model.tier,
                request.labels,
            ):
                continue
            why = self.soft_pressure(budget)
            if why:
                return Pressure(budget.name, why)
        return None

    # -- settling ------------------------------------------------------------------

    def settle(
        self, reservation: Reservation, actual_nanos: int, mono: int
    ) -> tuple[BudgetCharge, ...]:
        """Replace each hold by the actual cost (charged in full even when it is more)."""
        charges = []
        for hold in reservation:
            charges.append(
                BudgetCharge(hold.budget, hold.lease_id, hold.period_key, hold.amount_nanos)
            )
            account = self._accounts.get(hold.budget)
            if account is not None:
                self._count_demand(account, actual_nanos, mono)
            if hold.lease_id == self.offline_lease_id:
                offline = account.offline if account is not None else None
                if offline is not None:
                    offline.reserved -= hold.amount_nanos
                    offline.spent += actual_nanos
                continue
            lease = self._by_id.get(hold.lease_id)
            if lease is None:
                log.warning("settling on unknown lease %s", hold.lease_id)
                continue
            lease.reserved -= hold.amount_nanos
            lease.spent += actual_nanos
            if lease.retiring and lease.reserved <= 0:
                self._close(lease)
        return tuple(charges)

    def _count_demand(self, account: _Account, amount: int, mono: int) -> None:
        start = account.demand_start
        if start is None or mono - start >= 2 * DEMAND_WINDOW_MS:
            account.demand_start, account.demand_previous = mono, 0
            account.demand_current = 0
        elif mono - start >= DEMAND_WINDOW_MS:
            account.demand_start = start + DEMAND_WINDOW_MS
            account.demand_previous, account.demand_current = account.demand_current, 0
        account.demand_current += amount

    def demand_per_s(self, budget: str, mono: int) -> int:
        """Recent spend rate: the last full window and the current one, per second."""
        account = self._accounts.get(budget)
        if account is None or account.demand_start is None:
            return 0
        if mono - account.demand_start >= 2 * DEMAND_WINDOW_MS:
            return 0
        elapsed = max(1_000, DEMAND_WINDOW_MS + mono - account.demand_start)
        return (account.demand_previous + account.demand_current) * 1_000 // elapsed

    # -- grants and requests ---------------------------------------------------------

    def apply_grant(self, grant: Grant, mono: int, now_ms: int) -> None:
        account = self._accounts.get(grant.budget)
        if account is None:
            # Authority for a budget no longer configured: give it straight back.
            self._closes.append(
                LeaseClose(grant.lease_id, grant.budget, 0, reason="budget not configured")
            )
            return
        budget = account.budget
        current_key = period_key(budget.period, budget.time_zone, now_ms)
        key = grant.period_key or current_key
        lease = self._by_id.get(grant.lease_id)
        if lease is None:
            window = period_window(budget.period, budget.time_zone, now_ms)
            if key > current_key:  # the control plane's clock is a little ahead
                window = period_window(budget.period, budget.time_zone, window[1])
            # A lease id closed earlier and reopened by the control plane keeps what
            # was spent through it: its new grant counts that spend too.
            spent = self._closed_spent.get(grant.lease_id, 0)
            lease = _Lease(grant.lease_id, budget.name, key, window, spent=spent)
            self._by_id[lease.lease_id] = lease
        topup = max(0, grant.granted_nanos - lease.granted)
        # The control plane's cumulative grant is the truth, even when it is lower:
        # a lease it expired while this sidecar was cut off returned its remainder to
        # the budget, and reopening it grants only from what was applied.
        lease.granted = grant.granted_nanos
        lease.deadline = mono + grant.ttl_ms - skew_margin_ms(grant.ttl_ms)
        lease.refresh_at = mono + (grant.refresh_after_ms or grant.ttl_ms // 3)
        if topup:
            lease.last_topup = topup
        lease.soft = grant.soft_threshold_crossed
        lease.committed_at_grant = grant.budget_committed_nanos
        lease.spent_at_grant = lease.spent
        if account.asked_at is not None:
            account.short_answer = topup < account.asked_nanos
            account.asked_at = None
            account.answered_at = mono
        account.wants = False
        if key < current_key or lease.retiring:
            # A late answer for a period already over, or for a lease being closed:
            # keep it only to close it.
            lease.retiring = lease.retiring or "granted for a period already over"
            if lease.reserved <= 0:
                self._close(lease)
            return
        if account.lease is not None and account.lease is not lease:
            self._retire(account, "replaced by the lease for period " + key)
        account.lease = lease

    def requests(self, mono: int, now_ms: int) -> list[LeaseAsk]:
        """What to ask the control plane for now; each is marked as asked."""
        asks = []
        for account in self._accounts.values():
            if account.asked_at is not None and mono - account.asked_at < REQUEST_RETRY_MS:
                continue
            if account.short_answer and mono - account.answered_at < REQUEST_RETRY_MS:
                continue  # the control plane just said there is no more: do not hammer it
            budget = account.budget
            lease = account.lease
            if lease is not None and not lease.window[0] <= now_ms < lease.window[1]:
                self._retire(account, "period over")
                lease = None
            left = lease.left if lease is not None else 0
            due = (
                account.wants
                or lease is None
                or mono >= lease.refresh_at
                # Ask before running dry: a top-up takes a round trip, and a call
                # that finds the lease short meanwhile is downgraded or refused.
                or left < max(lease.last_topup // LOW_WATER_DIVISOR, 2 * account.largest_need)
            )
            if not due:
                continue
            # A tenth of the limit only for the first ask: held for long, a fixed
            # slice would strand that much budget in a sidecar that crashes.
            first = lease is None or lease.granted == 0
            target = max(
                budget.limit_nanos // INITIAL_FRACTION if first else 0,
                self.demand_per_s(budget.name, mono) * TARGET_HOLD_MS // 1_000,
                NEED_MULTIPLE * account.largest_need,
            )
            requested = max(0, min(budget.limit_nanos, target) - max(0, left))
            account.asked_at, account.asked_nanos = mono, requested
            asks.append(
                LeaseAsk(
                    budget=budget.name,
                    requested_nanos=requested,
                    spent_nanos=lease.spent if lease is not None else 0,
                    reserved_nanos=lease.reserved if lease is not None else 0,
                    current_lease_id=lease.lease_id if lease is not None else "",
                    demand_nanos_per_s=self.demand_per_s(budget.name, mono),
                    period_key=period_key(budget.period, budget.time_zone, now_ms),
                )
            )
        return asks

    def forget_requests(self) -> None:
        """The stream dropped: whatever was asked may never be answered; ask again."""
        for account in self._accounts.values():
            if account.asked_at is not None:
                account.asked_at = None
                account.wants = True

    # -- closing -------------------------------------------------------------------

    def tick(self, now_ms: int) -> None:
        """Retire leases whose calendar period is over (closed once nothing is reserved)."""
        for account in self._accounts.values():
            lease = account.lease
            if lease is not None and now_ms >= lease.window[1]:
                self._retire(account, "period over")

    def close_all(self, reason: str) -> None:
        """At shutdown: every lease is closed once its in-flight calls are settled."""
        for account in self._accounts.values():
            self._retire(account, reason)

    def take_closes(self) -> list[LeaseClose]:
        """Closes ready to be journaled, in the order they became ready."""
        closes, self._closes = self._closes, []
        return closes

    def _retire(self, account: _Account, reason: str) -> None:
        lease = account.lease
        if lease is None:
            return
        account.lease = None
        account.wants = True
        if not lease.retiring:
            lease.retiring = reason
        if lease.reserved <= 0:
            self._close(lease)

    def _close(self, lease: _Lease) -> None:
        if self._by_id.pop(lease.lease_id, None) is None:
            return
        self._closed_spent[lease.lease_id] = lease.spent
        self._closes.append(
            LeaseClose(lease.lease_id, lease.budget, lease.spent, reason=lease.retiring)
        )

    # -- views ---------------------------------------------------------------------

    def leases(self, mono: int) -> list[LeaseView]:
        """Every lease not yet closed, current and retiring."""
        return [
            LeaseView(
                budget=lease.budget,
                lease_id=lease.lease_id,
                period_key=lease.period_key,
                granted_nanos=lease.granted,
                spent_nanos=lease.spent,
                reserved_nanos=lease.reserved,
                lapsed=mono >= lease.deadline,
            )
            for lease in self._by_id.values()
        ]

    def reserved_nanos(self) -> int:
        held = sum(lease.reserved for lease in self._by_id.values())
        offline = sum(a.offline.reserved for a in self._accounts.values() if a.offline)
        return held + offline
