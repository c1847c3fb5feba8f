"""Protobuf <-> typed values for the clients: the one place client code maps wire types.

The sync and asyncio Router clients and the Admin client all build their requests and
read their answers through these functions, so the mapping exists once. Enum mappings
come from `faregate.convert`. No I/O here; must not import gRPC nor the servers.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import TypeVar

from clients.admin_results import (
    ApplyResult,
    Approval,
    ApprovalDecision,
    BudgetStatus,
    ConfigChange,
    LeaseInfo,
    RevisionInfo,
    SidecarInfo,
    SidecarList,
    SpendReport,
    SpendRow,
)
from clients.errors import FaregateError, InvalidArgumentError
from clients.router_results import ReportResult, RouteResult, RuleFired
from faregate.convert import (
    ACTION_FROM_PB,
    COMPLEXITY_TO_PB,
    OUTCOME_TO_PB,
    PRIORITY_TO_PB,
    RISK_FROM_PB,
    RISK_TO_PB,
    SENSITIVITY_TO_PB,
)
from faregate.model import Complexity, Outcome, Priority, RiskLevel, Sensitivity
from faregate.v1 import admin_pb2, control_pb2, router_pb2

E = TypeVar("E", bound=StrEnum)


def parse_enum(enum: type[E], value: E | str, field: str) -> E:
    """Accept an enum member or its string value; anything else names the field."""
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(repr(member.value) for member in enum if member.value)
        raise InvalidArgumentError(f"{field}: {value!r} is not one of {choices}") from None


def _non_negative(value: int, field: str) -> int:
    if value < 0:
        raise InvalidArgumentError(f"{field}: must not be negative (got {value})")
    return value


def route_request(
    capability: str,
    *,
    tenant: str,
    team: str,
    sensitivity: Sensitivity | str,
    risk: RiskLevel | str,
    priority: Priority | str,
    complexity: Complexity | str | None,
    complexity_score: float | None,
    input_tokens: int,
    max_output_tokens: int,
    labels: Mapping[str, str] | None,
    idempotency_key: str,
    approval_id: str,
    required_compliance_tags: Iterable[str],
    trace_id: str,
    dry_run: bool = False,
) -> router_pb2.RouteRequest:
    """Build a RouteRequest, rejecting what is wrong before it costs a round trip."""
    if not capability:
        raise InvalidArgumentError("capability: required")
    if complexity_score is not None and not 0.0 <= complexity_score <= 1.0:
        raise InvalidArgumentError(f"complexity_score: must be in [0, 1] (got {complexity_score})")
    request = router_pb2.RouteRequest(
        capability=capability,
        tenant=tenant,
        team=team,
        sensitivity=SENSITIVITY_TO_PB[parse_enum(Sensitivity, sensitivity, "sensitivity")],
        risk=RISK_TO_PB[parse_enum(RiskLevel, risk, "risk")],
        priority=PRIORITY_TO_PB[parse_enum(Priority, priority, "priority")],
        complexity=COMPLEXITY_TO_PB[parse_enum(Complexity, complexity or "", "complexity")],
        input_tokens=_non_negative(input_tokens, "input_tokens"),
        max_output_tokens=_non_negative(max_output_tokens, "max_output_tokens"),
        labels=dict(labels or {}),
        idempotency_key=idempotency_key,
        approval_id=approval_id,
        required_compliance_tags=list(required_compliance_tags),
        trace_id=trace_id,
        dry_run=dry_run,
    )
    # A proto3 `optional`: only set it when given, so "unset" stays distinguishable from 0.
    if complexity_score is not None:
        request.complexity_score = complexity_score
    return request


def route_result(decision: router_pb2.RouteDecision) -> RouteResult:
    action = ACTION_FROM_PB.get(decision.action)
    if action is None:
        raise FaregateError(
            f"decision {decision.decision_id or '?'} carries no action ({decision.action})"
        )
    return RouteResult(
        decision_id=decision.decision_id,
        action=action,
        model=decision.model,
        provider=decision.provider,
        tier=decision.tier,
        estimated_cost_nanos=decision.estimated_cost_nanos,
        reserved_cost_nanos=decision.reserved_cost_nanos,
        max_output_tokens=decision.max_output_tokens,
        rules=tuple(RuleFired(rule=r.rule, detail=r.detail) for r in decision.rules),
        config_version=decision.config_version,
        approval_id=decision.approval_id,
        retry_after_ms=decision.retry_after_ms,
        reason=decision.reason,
    )


def usage_report(
    decision_id: str,
    *,
    input_tokens: int,
    output_tokens: int,
    cached_input_tokens: int,
    latency_ms: int,
    outcome: Outcome | str,
    business_value_nanos: int,
    outcome_label: str,
    labels: Mapping[str, str] | None,
    model: str,
) -> router_pb2.UsageReport:
    if not decision_id:
        raise InvalidArgumentError("decision_id: required")
    if cached_input_tokens > input_tokens:
        raise InvalidArgumentError(
            "cached_input_tokens: must not exceed input_tokens (the prompt includes its cached"
            " part)"
        )
    return router_pb2.UsageReport(
        decision_id=decision_id,
        input_tokens=_non_negative(input_tokens, "input_tokens"),
        cached_input_tokens=_non_negative(cached_input_tokens, "cached_input_tokens"),
        output_tokens=_non_negative(output_tokens, "output_tokens"),
        latency_ms=_non_negative(latency_ms, "latency_ms"),
        outcome=OUTCOME_TO_PB[parse_enum(Outcome, outcome, "outcome")],
        business_value_nanos=business_value_nanos,
        outcome_label=outcome_label,
        labels=dict(labels or {}),
        model=model,
    )


def report_request(reports: Sequence[router_pb2.UsageReport]) -> router_pb2.ReportRequest:
    return router_pb2.ReportRequest(reports=list(reports))


def report_results(
    response: router_pb2.ReportResponse, sent: Sequence[router_pb2.UsageReport]
) -> list[ReportResult]:
    """One result per sent report, in the order sent, matched by decision id.

    Matching by id (not position) keeps a short or reordered answer from pinning one
    decision's cost on another; a report the server did not answer is marked as such.
    """
    by_id: defaultdict[str, deque[ReportResult]] = defaultdict(deque)
    for r in response.results:
        by_id[r.decision_id].append(
            ReportResult(
                decision_id=r.decision_id,
                accepted=r.accepted,
                cost_nanos=r.cost_nanos,
                duplicate=r.duplicate,
                error=r.error,
            )
        )
    results = []
    for report in sent:
        answers = by_id.get(report.decision_id)
        if answers:
            results.append(answers.popleft())
        else:
            results.append(
                ReportResult(report.decision_id, accepted=False, error="no result from sidecar")
            )
    return results


def apply_result(response: admin_pb2.ApplyConfigResponse) -> ApplyResult:
    return ApplyResult(
        revision=response.revision,
        snapshot_version=response.snapshot_version,
        changes=tuple(
            ConfigChange(kind=c.kind, name=c.name, op=c.op, detail=c.detail)
            for c in response.changes
        ),
        unchanged=response.unchanged,
        dry_run=response.dry_run,
    )


def revisions(response: admin_pb2.ListRevisionsResponse) -> list[RevisionInfo]:
    return [
        RevisionInfo(
            revision=r.revision,
            snapshot_version=r.snapshot_version,
            created_at_unix_ms=r.created_at_unix_ms,
            author=r.author,
            source_name=r.source_name,
            models=r.models,
            capabilities=r.capabilities,
            tenants=r.tenants,
        )
        for r in response.revisions
    ]


def sidecars(response: admin_pb2.ListSidecarsResponse) -> SidecarList:
    return SidecarList(
        sidecars=tuple(
            SidecarInfo(
                sidecar_id=s.sidecar_id,
                service=s.service,
                connected=s.connected,
                snapshot_version=s.snapshot_version,
                last_nack_version=s.last_nack_version,
                last_nack_reason=s.last_nack_reason,
                last_seen_unix_ms=s.last_seen_unix_ms,
                incarnation=s.incarnation,
                hostname=s.hostname,
                controlplane_id=s.controlplane_id,
            )
            for s in response.sidecars
        ),
        current_version=response.current_version,
    )


def spend(response: admin_pb2.SpendResponse) -> SpendReport:
    return SpendReport(
        rows=tuple(
            SpendRow(
                key=r.key,
                cost_nanos=r.cost_nanos,
                requests=r.requests,
                input_tokens=r.input_tokens,
                cached_input_tokens=r.cached_input_tokens,
                output_tokens=r.output_tokens,
                business_value_nanos=r.business_value_nanos,
            )
            for r in response.rows
        ),
        total_cost_nanos=response.total_cost_nanos,
        total_requests=response.total_requests,
        window_ms=response.window_ms,
        group_by=response.group_by,
    )


_APPROVAL_STATES = {
    control_pb2.APPROVAL_STATE_PENDING: "pending",
    control_pb2.APPROVAL_STATE_APPROVED: "approved",
    control_pb2.APPROVAL_STATE_DENIED: "denied",
    control_pb2.APPROVAL_STATE_EXPIRED: "expired",
}


def approval_decision(message: control_pb2.ApprovalDecision) -> ApprovalDecision:
    return ApprovalDecision(
        approval_id=message.approval_id,
        state=_APPROVAL_STATES.get(message.state, "unknown"),
        expires_at_unix_ms=message.expires_at_unix_ms,
        max_uses=message.max_uses,
        decided_by=message.decided_by,
        reason=message.reason,
        decided_at_unix_ms=message.decided_at_unix_ms,
    )


def approvals(response: admin_pb2.ListApprovalsResponse) -> list[Approval]:
    listed = []
    for a in response.approvals:
        request = a.request
        risk = RISK_FROM_PB.get(request.risk)
        listed.append(
            Approval(
                approval_id=request.approval_id,
                decision=approval_decision(a.decision),
                capability=request.capability,
                tenant=request.tenant,
                team=request.team,
                model=request.model,
                estimated_cost_nanos=request.estimated_cost_nanos,
                risk=risk.value if risk is not None else "",
                labels=dict(request.labels),
                idempotency_key=request.idempotency_key,
                decision_id=request.decision_id,
                sidecar_id=a.sidecar_id,
                requested_at_unix_ms=a.requested_at_unix_ms,
                service=a.service,
            )
        )
    return listed


def budgets(response: admin_pb2.ListBudgetsResponse) -> list[BudgetStatus]:
    return [
        BudgetStatus(
            name=b.name,
            period_key=b.period_key,
            limit_nanos=b.limit_nanos,
            committed_nanos=b.committed_nanos,
            outstanding_nanos=b.outstanding_nanos,
            remaining_nanos=b.remaining_nanos,
            forfeited_nanos=b.forfeited_nanos,
            late_nanos=b.late_nanos,
            burn_rate_nanos_per_hour=b.burn_rate_nanos_per_hour,
            projected_exhaustion_unix_ms=b.projected_exhaustion_unix_ms,
            mode=b.mode,
            offline_policy=b.offline_policy,
            soft_threshold_crossed=b.soft_threshold_crossed,
            scope=b.scope,
            open_leases=b.open_leases,
            period_end_unix_ms=b.period_end_unix_ms,
        )
        for b in response.budgets
    ]


def leases(response: admin_pb2.ListLeasesResponse) -> list[LeaseInfo]:
    return [
        LeaseInfo(
            lease_id=lease.lease_id,
            budget=lease.budget,
            period_key=lease.period_key,
            sidecar_id=lease.sidecar_id,
            state=lease.state,
            granted_nanos=lease.granted_nanos,
            applied_nanos=lease.applied_nanos,
            held_nanos=lease.held_nanos,
            expires_at_unix_ms=lease.expires_at_unix_ms,
            service=lease.service,
            incarnation=lease.incarnation,
            created_at_unix_ms=lease.created_at_unix_ms,
            updated_at_unix_ms=lease.updated_at_unix_ms,
        )
        for lease in response.leases
    ]
