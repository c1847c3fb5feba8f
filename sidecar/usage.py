"""From Route to Report: remembered decisions, priced usage reports, usage records.

Route leaves a `DecisionRecord` in the `DecisionRegistry` (bounded, and each entry
expires) holding what Report needs later: who asked, which model at which price,
the estimate and the lease reservation. Report looks the decision up, prices the
actual tokens with `faregate.pricing.cost_nanos`, settles the reservation in the
lease book (the difference returns to the lease; a cost above it is charged in
full), appends a `UsageRecord` with one `BudgetCharge` per covering budget to the
journal, then any lease close the settlement made ready, and tells the optional
`settled` listener. Each decision is counted once: a second report of it is
answered as a duplicate with the cost of the first, and counts nothing.
The whole `UsageRecord` is built, and checked to fit the ledger (int64 nanos),
and handed to the journal before the lease book is touched, so a report that
cannot be recorded changes nothing.

A decision holding a reservation that is not reported within the report deadline
(default 10 minutes, monotonic) is settled at its reserved amount with outcome
`unreported` (`settle_overdue`, called periodically and at shutdown); a report
arriving after that is refused. So is one whose entry was pushed out of a full
registry, which settles it at once, so no reservation is ever stranded.
The caller makes the journal durable before answering the service.

Reports are validated as a batch first (`RequestError` naming the field, nothing
counted): token counts are at most `MAX_TOKENS` each (far beyond any real call,
and low enough that no sane price overflows), latency and business value are
non-negative int64. Each report is then priced before any is settled; a cost
above `MAX_NANOS` refuses the whole batch too. Unknown decision ids are then
rejected one by one.

`UsageBatch` (what the journal seals and the control link ships) lives here so
that the journal and the wire mapping share it without importing each other.
Must not import gRPC or the wire types.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from faregate.model import Action, BudgetCharge, LeaseClose, Outcome, Price, Snapshot, UsageRecord
from faregate.pricing import MAX_TOKENS, cost_nanos
from sidecar.clock import Clock
from sidecar.engine import Decision, RequestError, RouteRequest, no_labels
from sidecar.leases import Hold, LeaseBook
from sidecar.snapshot_store import SnapshotSource

log = logging.getLogger(__name__)

DEFAULT_CAPACITY = 100_000
DEFAULT_TTL_MS = 24 * 60 * 60 * 1000
DEFAULT_REPORT_DEADLINE_MS = 10 * 60 * 1000
# Ledger amounts and the wire's counters are int64.
MAX_NANOS = 2**63 - 1
MAX_BATCH_RECORDS = 500
LATE_REPORT = "reported after the report deadline: already settled at its reserved amount"


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """What Report needs to know about a decision made earlier."""

    decision_id: str
    action: Action
    capability: str
    tenant: str
    team: str
    model: str
    provider: str
    price: Price | None  # None when the decision chose no model
    estimated_cost_nanos: int
    reserved_cost_nanos: int
    config_version: str
    decided_at_unix_ms: int
    labels: Mapping[str, str] = field(default_factory=no_labels)
    trace_id: str = ""
    reservation: tuple[Hold, ...] = ()


@dataclass(slots=True)
class _Entry:
    record: DecisionRecord
    reported_cost_nanos: int | None = None  # set once the decision has been reported
    late: bool = False  # settled as unreported: a report now comes too late


class DecisionRegistry:
    """Recent decisions by id; the oldest go first when full or expired."""

    def __init__(
        self,
        clock: Clock,
        capacity: int = DEFAULT_CAPACITY,
        ttl_ms: int = DEFAULT_TTL_MS,
        report_deadline_ms: int = DEFAULT_REPORT_DEADLINE_MS,
    ) -> None:
        self._clock = clock
        self._capacity = capacity
        self._ttl_ms = ttl_ms
        self._deadline_ms = report_deadline_ms
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        # Decisions holding a reservation, not reported yet: id -> monotonic deadline.
        self._unsettled: OrderedDict[str, int] = OrderedDict()
        self._evicted: list[DecisionRecord] = []

    def remember(self, request: RouteRequest, decision: Decision, snapshot: Snapshot) -> None:
        if decision.decision_id in self._entries:
            return  # a replayed decision must not forget that it was already reported
        model = snapshot.models_by_name.get(decision.model) if decision.model else None
        record = DecisionRecord(
            decision_id=decision.decision_id,
            action=decision.action,
            capability=request.capability,
            tenant=request.tenant,
            team=request.team,
            model=decision.model,
            provider=decision.provider,
            price=model.price if model is not None else None,
            estimated_cost_nanos=decision.estimated_cost_nanos,
            reserved_cost_nanos=decision.reserved_cost_nanos,
            config_version=decision.config_version,
            decided_at_unix_ms=self._clock.now_ms(),
            labels=request.labels,
            trace_id=request.trace_id,
            reservation=decision.reservation,
        )
        self._entries[record.decision_id] = _Entry(record)
        if record.reservation:
            self._unsettled[record.decision_id] = self._clock.monotonic_ms() + self._deadline_ms
        self._evict()

    def lookup(self, decision_id: str) -> DecisionRecord | None:
        entry = self._entry(decision_id)
        return entry.record if entry is not None else None

    def reported_cost(self, decision_id: str) -> int | None:
        """The cost the decision was settled at, or None if not reported yet."""
        entry = self._entry(decision_id)
        return entry.reported_cost_nanos if entry is not None else None

    def is_late(self, decision_id: str) -> bool:
        entry = self._entry(decision_id)
        return entry is not None and entry.late

    def mark_reported(self, decision_id: str, cost: int, *, late: bool = False) -> None:
        self._unsettled.pop(decision_id, None)
        entry = self._entry(decision_id)
        if entry is not None:
            entry.reported_cost_nanos = cost
            entry.late = late

    def overdue(self, mono_ms: int) -> list[DecisionRecord]:
        """Decisions with a reservation past their report deadline (or pushed out of a
        full registry); each is returned once."""
        due, self._evicted = self._evicted, []
        while self._unsettled:
            decision_id, deadline = next(iter(self._unsettled.items()))
            if deadline > mono_ms:
                break
            del self._unsettled[decision_id]
            entry = self._entries.get(decision_id)
            if entry is not None:
                due.append(entry.record)
        return due

    def unsettled(self) -> list[DecisionRecord]:
        """Every decision still holding a reservation (at shutdown: settle them all)."""
        due, self._evicted = self._evicted, []
        for decision_id in list(self._unsettled):
            del self._unsettled[decision_id]
            entry = self._entries.get(decision_id)
            if entry is not None:
                due.append(entry.record)
        return due

    def __len__(self) -> int:
        return len(self._entries)

    def _entry(self, decision_id: str) -> _Entry | None:
        self._evict()
        return self._entries.get(decision_id)

    def _evict(self) -> None:
        while len(self._entries) > self._capacity:
            self._forget(self._entries.popitem(last=False)[1])
        # Entries are kept in decision order, so the expired ones are all at the front.
        horizon = self._clock.now_ms() - self._ttl_ms
        while self._entries:
            oldest = next(iter(self._entries.values()))
            if oldest.record.decided_at_unix_ms >= horizon:
                break
            self._forget(self._entries.popitem(last=False)[1])

    def _forget(self, entry: _Entry) -> None:
        # A reservation must never be stranded by eviction: settle it as unreported.
        if self._unsettled.pop(entry.record.decision_id, None) is not None:
            self._evicted.append(entry.record)


@dataclass(frozen=True, slots=True)
class UsageReport:
    decision_id: str
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: int = 0
    outcome: Outcome = Outcome.UNSPECIFIED
    business_value_nanos: int = 0
    outcome_label: str = ""
    labels: Mapping[str, str] = field(default_factory=no_labels)
    model: str = ""  # the model actually called, when not the routed one


@dataclass(frozen=True, slots=True)
class ReportResult:
    decision_id: str
    accepted: bool
    cost_nanos: int = 0
    error: str = ""
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class UsageBatch:
    """Settled usage on its way to the control plane, applied once per (incarnation, seq)."""

    incarnation: str
    seq: int
    records: tuple[UsageRecord, ...]
    lease_closes: tuple[LeaseClose, ...] = ()


class UsageSink(Protocol):
    def append(self, record: UsageRecord) -> None: ...

    def append_close(self, close: LeaseClose) -> None: ...


def validate_reports(reports: Sequence[UsageReport]) -> None:
    """Reject a malformed batch as a whole, naming the field (`reports[2].output_tokens`)."""
    for index, report in enumerate(reports):
        where = f"reports[{index}]"
        if not report.decision_id:
            raise RequestError(f"{where}.decision_id", "is required")
        for name in ("input_tokens", "cached_input_tokens", "output_tokens"):
            value = getattr(report, name)
            if value < 0:
                raise RequestError(f"{where}.{name}", "must not be negative")
            if value > MAX_TOKENS:
                raise RequestError(f"{where}.{name}", f"must be at most {MAX_TOKENS:_} tokens")
        for name in ("latency_ms", "business_value_nanos"):
            value = getattr(report, name)
            if value < 0:
                raise RequestError(f"{where}.{name}", "must not be negative")
            if value > MAX_NANOS:
                raise RequestError(f"{where}.{name}", f"must be at most {MAX_NANOS} (int64)")
        if report.cached_input_tokens > report.input_tokens:
            raise RequestError(
                f"{where}.cached_input_tokens",
                "must not exceed input_tokens (input_tokens counts the whole prompt)",
            )


@dataclass(frozen=True, slots=True)
class _Planned:
    decision: DecisionRecord
    usage: UsageRecord


def _charges(reservation: tuple[Hold, ...]) -> tuple[BudgetCharge, ...]:
    """The lease each covering budget is charged through, with the amount it held
    (known from the reservation alone, before the lease book settles it)."""
    return tuple(
        BudgetCharge(h.budget, h.lease_id, h.period_key, h.amount_nanos) for h in reservation
    )


class UsageRecorder:
    """Settles usage reports against remembered decisions into usage records."""

    def __init__(
        self,
        service: str,
        registry: DecisionRegistry,
        sink: UsageSink,
        snapshots: SnapshotSource,
        clock: Clock,
        settled: Callable[[UsageRecord], None] | None = None,
        leases: LeaseBook | None = None,
    ) -> None:
        self._leases = leases
        self._service = service
        self._settled = settled
        self._registry = registry
        self._sink = sink
        self._snapshots = snapshots
        self._clock = clock

    def report(self, reports: Sequence[UsageReport]) -> list[ReportResult]:
        validate_reports(reports)
        # Price every report before settling any: one that cannot be recorded refuses
        # the whole batch, with nothing counted.
        plans = [self._plan(index, report) for index, report in enumerate(reports)]
        return [self._apply(plan) for plan in plans]

    def settle_overdue(self) -> int:
        """Settle every reservation past its report deadline as unreported; how many."""
        overdue = self._registry.overdue(self._clock.monotonic_ms())
        for decision in overdue:
            self._settle_unreported(decision)
        return len(overdue)

    def settle_all_unreported(self) -> int:
        """At shutdown: no report can arrive any more, so settle what is still held."""
        held = self._registry.unsettled()
        for decision in held:
            self._settle_unreported(decision)
        return len(held)

    def _settle_unreported(self, decision: DecisionRecord) -> None:
        cost = decision.reserved_cost_nanos
        usage = UsageRecord(
            decision_id=decision.decision_id,
            service=self._service,
            capability=decision.capability,
            tenant=decision.tenant,
            team=decision.team,
            model=decision.model,
            provider=decision.provider,
            action=decision.action,
            input_tokens=0,
            cached_input_tokens=0,
            output_tokens=0,
            cost_nanos=cost,
            estimated_cost_nanos=decision.estimated_cost_nanos,
            reserved_cost_nanos=cost,
            price_version=decision.price.version if decision.price is not None else "",
            config_version=decision.config_version,
            outcome=Outcome.UNREPORTED,
            latency_ms=0,
            decided_at_unix_ms=decision.decided_at_unix_ms,
            reported_at_unix_ms=self._clock.now_ms(),
            labels=decision.labels,
            trace_id=decision.trace_id,
            budgets=tuple(h.budget for h in decision.reservation),
            charges=_charges(decision.reservation),
        )
        log.info("decision %s never reported: settled at its reservation", decision.decision_id)
        self._commit(decision, usage, late=True)

    def _commit(self, decision: DecisionRecord, usage: UsageRecord, *, late: bool = False) -> None:
        """Journal a complete record, then settle its reservation: if the journal refuses
        it (it cannot be encoded), the lease book and the registry are untouched."""
        self._sink.append(usage)
        if self._leases is not None:
            if decision.reservation:
                self._leases.settle(
                    decision.reservation, usage.cost_nanos, self._clock.monotonic_ms()
                )
            # A close waits for the last reservation on its lease: this one may be it.
            closes = self._leases.take_closes()
        else:
            closes = []
        self._registry.mark_reported(decision.decision_id, usage.cost_nanos, late=late)
        for close in closes:
            self._sink.append_close(close)
        if self._settled is not None:
            self._settled(usage)

    def _plan(self, index: int, report: UsageReport) -> ReportResult | _Planned:
        """The record a report would settle, or the answer when it settles nothing.
        Changes nothing; a record that could not be stored raises `RequestError`."""
        decision = self._registry.lookup(report.decision_id)
        if decision is None:
            return ReportResult(
                report.decision_id, accepted=False, error="unknown or expired decision id"
            )
        earlier = self._registry.reported_cost(report.decision_id)
        if earlier is not None and self._registry.is_late(report.decision_id):
            return ReportResult(report.decision_id, accepted=False, error=LATE_REPORT)
        if earlier is not None:
            return ReportResult(
                report.decision_id, accepted=True, cost_nanos=earlier, duplicate=True
            )
        model, provider, price = self._priced_model(decision, report)
        if price is None:
            return ReportResult(
                report.decision_id,
                accepted=False,
                error=f"decision was {decision.action.value}: no model was routed to report on",
            )
        cost = cost_nanos(
            price, report.input_tokens, report.cached_input_tokens, report.output_tokens
        )
        if cost > MAX_NANOS:
            raise RequestError(
                f"reports[{index}]",
                f"its tokens cost {cost} nanos on {model}, more than a usage record can hold "
                f"({MAX_NANOS})",
            )
        usage = UsageRecord(
            decision_id=decision.decision_id,
            service=self._service,
            capability=decision.capability,
            tenant=decision.tenant,
            team=decision.team,
            model=model,
            provider=provider,
            action=decision.action,
            input_tokens=report.input_tokens,
            cached_input_tokens=report.cached_input_tokens,
            output_tokens=report.output_tokens,
            cost_nanos=cost,
            estimated_cost_nanos=decision.estimated_cost_nanos,
            reserved_cost_nanos=decision.reserved_cost_nanos,
            price_version=price.version,
            config_version=decision.config_version,
            outcome=report.outcome,
            latency_ms=report.latency_ms,
            decided_at_unix_ms=decision.decided_at_unix_ms,
            reported_at_unix_ms=self._clock.now_ms(),
            business_value_nanos=report.business_value_nanos,
            outcome_label=report.outcome_label,
            labels=MappingProxyType({**decision.labels, **report.labels}),
            trace_id=decision.trace_id,
            budgets=tuple(h.budget for h in decision.reservation),
            charges=_charges(decision.reservation),
        )
        return _Planned(decision, usage)

    def _apply(self, plan: ReportResult | _Planned) -> ReportResult:
        if isinstance(plan, ReportResult):
            return plan
        decision_id = plan.decision.decision_id
        earlier = self._registry.reported_cost(decision_id)
        if earlier is not None:  # the same decision twice in one batch
            return ReportResult(decision_id, accepted=True, cost_nanos=earlier, duplicate=True)
        self._commit(plan.decision, plan.usage)
        return ReportResult(decision_id, accepted=True, cost_nanos=plan.usage.cost_nanos)

    def _priced_model(
        self, decision: DecisionRecord, report: UsageReport
    ) -> tuple[str, str, Price | None]:
        """(model, provider, price) to charge: the routed model unless the report names another."""
        if not report.model or report.model == decision.model:
            return decision.model, decision.provider, decision.price
        snapshot = self._snapshots.current
        named = snapshot.models_by_name.get(report.model) if snapshot is not None else None
        if named is not None:
            return named.name, named.provider, named.price
        # Usage must not be lost over a name we do not know: charge the routed model's
        # price, but keep the name the service says it called for chargeback.
        log.warning(
            "report for %s names unknown model %r; priced as %s",
            decision.decision_id,
            report.model,
            decision.model or "nothing",
        )
        return report.model, decision.provider, decision.price
