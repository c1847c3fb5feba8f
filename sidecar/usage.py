"""From Route to Report: remembered decisions, priced usage reports, usage records.

Route leaves a `DecisionRecord` in the `DecisionRegistry` (bounded, and each entry
expires) holding what Report needs later: who asked, which model at which price,
and the estimate. Report looks the decision up, prices the actual tokens with
`faregate.pricing.cost_nanos`, appends a `UsageRecord` to the outbox and tells the
optional `settled` listener (local budget tallies). Each
decision is counted once: a second report of it is answered as a duplicate with
the cost of the first, and counts nothing.

Reports are validated as a batch first (`RequestError` naming the field, nothing
counted); unknown decision ids are then rejected one by one.
Must not import gRPC or the wire types.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from faregate.model import Action, Outcome, Price, Snapshot, UsageRecord
from faregate.pricing import cost_nanos
from sidecar.clock import Clock
from sidecar.engine import Decision, RequestError, RouteRequest, no_labels
from sidecar.snapshot_store import SnapshotSource

log = logging.getLogger(__name__)

DEFAULT_CAPACITY = 100_000
DEFAULT_TTL_MS = 24 * 60 * 60 * 1000


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


@dataclass(slots=True)
class _Entry:
    record: DecisionRecord
    reported_cost_nanos: int | None = None  # set once the decision has been reported


class DecisionRegistry:
    """Recent decisions by id; the oldest go first when full or expired."""

    def __init__(
        self, clock: Clock, capacity: int = DEFAULT_CAPACITY, ttl_ms: int = DEFAULT_TTL_MS
    ) -> None:
        self._clock = clock
        self._capacity = capacity
        self._ttl_ms = ttl_ms
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

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
        )
        self._entries[record.decision_id] = _Entry(record)
        self._evict()

    def lookup(self, decision_id: str) -> DecisionRecord | None:
        entry = self._entry(decision_id)
        return entry.record if entry is not None else None

    def reported_cost(self, decision_id: str) -> int | None:
        """The cost the decision was settled at, or None if not reported yet."""
        entry = self._entry(decision_id)
        return entry.reported_cost_nanos if entry is not None else None

    def mark_reported(self, decision_id: str, cost: int) -> None:
        entry = self._entry(decision_id)
        if entry is not None:
            entry.reported_cost_nanos = cost

    def __len__(self) -> int:
        return len(self._entries)

    def _entry(self, decision_id: str) -> _Entry | None:
        self._evict()
        return self._entries.get(decision_id)

    def _evict(self) -> None:
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)
        # Entries are kept in decision order, so the expired ones are all at the front.
        horizon = self._clock.now_ms() - self._ttl_ms
        while self._entries:
            oldest = next(iter(self._entries.values()))
            if oldest.record.decided_at_unix_ms >= horizon:
                break
            self._entries.popitem(last=False)


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


class UsageSink(Protocol):
    def append(self, record: UsageRecord) -> None: ...


def validate_reports(reports: Sequence[UsageReport]) -> None:
    """Reject a malformed batch as a whole, naming the field (`reports[2].output_tokens`)."""
    for index, report in enumerate(reports):
        where = f"reports[{index}]"
        if not report.decision_id:
            raise RequestError(f"{where}.decision_id", "is required")
        for name in ("input_tokens", "cached_input_tokens", "output_tokens", "latency_ms"):
            if getattr(report, name) < 0:
                raise RequestError(f"{where}.{name}", "must not be negative")
        if report.cached_input_tokens > report.input_tokens:
            raise RequestError(
                f"{where}.cached_input_tokens",
                "must not exceed input_tokens (input_tokens counts the whole prompt)",
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
    ) -> None:
        self._service = service
        self._settled = settled
        self._registry = registry
        self._sink = sink
        self._snapshots = snapshots
        self._clock = clock

    def report(self, reports: Sequence[UsageReport]) -> list[ReportResult]:
        validate_reports(reports)
        return [self._settle(report) for report in reports]

    def _settle(self, report: UsageReport) -> ReportResult:
        decision = self._registry.lookup(report.decision_id)
        if decision is None:
            return ReportResult(
                report.decision_id, accepted=False, error="unknown or expired decision id"
            )
        earlier = self._registry.reported_cost(report.decision_id)
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
        )
        self._sink.append(usage)
        self._registry.mark_reported(report.decision_id, cost)
        if self._settled is not None:
            self._settled(usage)
        return ReportResult(report.decision_id, accepted=True, cost_nanos=cost)

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
