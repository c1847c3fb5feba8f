"""Maps the sidecar's own values to and from the wire types (`faregate.v1`).

Route requests and decisions, usage reports and results, usage batches with their
lease closes, lease requests out and grants in, approval requests out and
verdicts in, the journal's entry payloads and the snapshot file codec. Out-of-range enum numbers
become `RequestError`s naming the field, so the Router service can answer
INVALID_ARGUMENT. Shared snapshot and usage-record mapping lives in
`faregate.convert`; this module only adds the sidecar's messages. No I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType
from typing import Any, TypeVar

from google.protobuf.message import DecodeError

from faregate.convert import (
    ACTION_TO_PB,
    COMPLEXITY_FROM_PB,
    OUTCOME_FROM_PB,
    PRIORITY_FROM_PB,
    RISK_FROM_PB,
    RISK_TO_PB,
    SENSITIVITY_FROM_PB,
    SnapshotDecodeError,
    lease_close_to_pb,
    snapshot_from_pb,
    snapshot_to_pb,
    usage_from_pb,
    usage_to_pb,
)
from faregate.model import (
    Complexity,
    LeaseClose,
    Outcome,
    Priority,
    RiskLevel,
    Sensitivity,
    Snapshot,
    UsageRecord,
)
from faregate.v1 import control_pb2, router_pb2, types_pb2
from sidecar.approvals import ApprovalRequest, ApprovalState, ApprovalVerdict
from sidecar.engine import Decision, RequestError, RouteRequest
from sidecar.leases import Grant, LeaseAsk
from sidecar.usage import ReportResult, UsageBatch, UsageReport

E = TypeVar("E", bound=Enum)


def _enum(number: int, table: Mapping[Any, E], unset: E, field: str) -> E:
    """Proto3 enums are open: an unknown number arrives intact and must be refused."""
    if number == 0:
        return unset
    value = table.get(number)
    if value is None:
        raise RequestError(field, f"unknown enum value {number}")
    return value


def route_request_from_pb(message: router_pb2.RouteRequest) -> RouteRequest:
    return RouteRequest(
        capability=message.capability,
        tenant=message.tenant,
        team=message.team,
        sensitivity=_enum(
            message.sensitivity, SENSITIVITY_FROM_PB, Sensitivity.INTERNAL, "sensitivity"
        ),
        risk=_enum(message.risk, RISK_FROM_PB, RiskLevel.LOW, "risk"),
        priority=_enum(message.priority, PRIORITY_FROM_PB, Priority.INTERACTIVE, "priority"),
        complexity=_enum(
            message.complexity, COMPLEXITY_FROM_PB, Complexity.UNSPECIFIED, "complexity"
        ),
        complexity_score=(
            message.complexity_score if message.HasField("complexity_score") else None
        ),
        input_tokens=message.input_tokens,
        max_output_tokens=message.max_output_tokens,
        labels=MappingProxyType(dict(message.labels)),
        idempotency_key=message.idempotency_key,
        approval_id=message.approval_id,
        required_compliance_tags=tuple(message.required_compliance_tags),
        trace_id=message.trace_id,
        dry_run=message.dry_run,
    )


def decision_to_pb(decision: Decision) -> router_pb2.RouteDecision:
    return router_pb2.RouteDecision(
        decision_id=decision.decision_id,
        action=ACTION_TO_PB[decision.action],
        model=decision.model,
        provider=decision.provider,
        tier=decision.tier,
        estimated_cost_nanos=decision.estimated_cost_nanos,
        reserved_cost_nanos=decision.reserved_cost_nanos,
        max_output_tokens=decision.max_output_tokens,
        rules=[types_pb2.RuleFired(rule=r.rule, detail=r.detail) for r in decision.rules],
        config_version=decision.config_version,
        approval_id=decision.approval_id,
        retry_after_ms=decision.retry_after_ms,
        reason=decision.reason,
    )


def usage_reports_from_pb(message: router_pb2.ReportRequest) -> list[UsageReport]:
    return [
        UsageReport(
            decision_id=report.decision_id,
            input_tokens=report.input_tokens,
            cached_input_tokens=report.cached_input_tokens,
            output_tokens=report.output_tokens,
            latency_ms=report.latency_ms,
            outcome=_enum(
                report.outcome, OUTCOME_FROM_PB, Outcome.UNSPECIFIED, f"reports[{i}].outcome"
            ),
            business_value_nanos=report.business_value_nanos,
            outcome_label=report.outcome_label,
            labels=MappingProxyType(dict(report.labels)),
            model=report.model,
        )
        for i, report in enumerate(message.reports)
    ]


def report_response_to_pb(results: list[ReportResult]) -> router_pb2.ReportResponse:
    return router_pb2.ReportResponse(
        results=[
            router_pb2.ReportResult(
                decision_id=r.decision_id,
                accepted=r.accepted,
                cost_nanos=r.cost_nanos,
                error=r.error,
                duplicate=r.duplicate,
            )
            for r in results
        ]
    )


def usage_batch_to_pb(batch: UsageBatch) -> control_pb2.UsageBatch:
    return control_pb2.UsageBatch(
        incarnation=batch.incarnation,
        seq=batch.seq,
        records=[usage_to_pb(record) for record in batch.records],
        lease_closes=[lease_close_to_pb(close) for close in batch.lease_closes],
    )


def lease_request_to_pb(ask: LeaseAsk) -> control_pb2.LeaseRequest:
    return control_pb2.LeaseRequest(
        budget=ask.budget,
        requested_nanos=ask.requested_nanos,
        spent_nanos=ask.spent_nanos,
        reserved_nanos=ask.reserved_nanos,
        current_lease_id=ask.current_lease_id,
        demand_nanos_per_s=ask.demand_nanos_per_s,
        period_key=ask.period_key,
    )


def lease_grant_from_pb(message: control_pb2.LeaseGrant) -> Grant | None:
    """None for a grant this sidecar cannot act on (no budget, no lease id, no TTL)."""
    if not message.budget or not message.lease_id or message.ttl_ms <= 0:
        return None
    return Grant(
        budget=message.budget,
        lease_id=message.lease_id,
        granted_nanos=message.granted_nanos,
        ttl_ms=message.ttl_ms,
        refresh_after_ms=message.refresh_after_ms,
        period_key=message.period_key,
        soft_threshold_crossed=message.soft_threshold_crossed,
        budget_committed_nanos=message.budget_committed_nanos,
        budget_limit_nanos=message.budget_limit_nanos,
        reason=message.reason,
    )


def encode_usage_record(record: UsageRecord) -> bytes:
    """A journal entry's payload: the wire `UsageRecord`, so a replay ships it unchanged."""
    return usage_to_pb(record).SerializeToString()


def decode_usage_record(data: bytes) -> UsageRecord:
    return usage_from_pb(types_pb2.UsageRecord.FromString(data))


def encode_lease_close(close: LeaseClose) -> bytes:
    return lease_close_to_pb(close).SerializeToString()


def decode_lease_close(data: bytes) -> LeaseClose:
    message = control_pb2.LeaseClose.FromString(data)
    return LeaseClose(
        lease_id=message.lease_id,
        budget=message.budget,
        spent_nanos=message.spent_nanos,
        forfeit=message.forfeit,
        reason=message.reason,
    )


APPROVAL_STATE_FROM_PB: Mapping[int, ApprovalState] = MappingProxyType(
    {
        control_pb2.APPROVAL_STATE_PENDING: ApprovalState.PENDING,
        control_pb2.APPROVAL_STATE_APPROVED: ApprovalState.APPROVED,
        control_pb2.APPROVAL_STATE_DENIED: ApprovalState.DENIED,
        control_pb2.APPROVAL_STATE_EXPIRED: ApprovalState.EXPIRED,
    }
)


def approval_request_to_pb(request: ApprovalRequest) -> control_pb2.ApprovalRequest:
    return control_pb2.ApprovalRequest(
        approval_id=request.approval_id,
        capability=request.capability,
        tenant=request.tenant,
        team=request.team,
        model=request.model,
        estimated_cost_nanos=request.estimated_cost_nanos,
        risk=RISK_TO_PB[request.risk],
        labels=dict(request.labels),
        idempotency_key=request.idempotency_key,
        decision_id=request.decision_id,
    )


def approval_verdict_from_pb(message: control_pb2.ApprovalDecision) -> ApprovalVerdict | None:
    """None for a message this sidecar cannot act on (no id, or a state it does not know)."""
    state = APPROVAL_STATE_FROM_PB.get(message.state)
    if state is None or not message.approval_id:
        return None
    return ApprovalVerdict(
        approval_id=message.approval_id,
        state=state,
        expires_at_unix_ms=message.expires_at_unix_ms,
        max_uses=message.max_uses,
        decided_by=message.decided_by,
        reason=message.reason,
        decided_at_unix_ms=message.decided_at_unix_ms,
    )


def snapshot_from_wire(message: types_pb2.Snapshot) -> Snapshot:
    """Decode a pushed snapshot; raises SnapshotDecodeError (a ValueError)."""
    return snapshot_from_pb(message)


class SnapshotFileCodec:
    """The bytes of `STATE_DIR/snapshot.pb`: the wire `Snapshot` message."""

    def encode(self, snapshot: Snapshot) -> bytes:
        return snapshot_to_pb(snapshot).SerializeToString()

    def decode(self, data: bytes) -> Snapshot:
        try:
            message = types_pb2.Snapshot.FromString(data)
        except DecodeError as exc:
            raise SnapshotDecodeError(f"not a snapshot message ({exc})") from exc
        return snapshot_from_pb(message)
