"""Maps the control plane's records to and from the wire types (`faregate.v1`).

The control plane's only module, besides the gRPC services, that touches `_pb2`
types: the stored form of a snapshot (serialized `faregate.v1.Snapshot` bytes), the
Admin API's response messages, approvals both ways, lease grants and closes. No I/O,
no clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import MappingProxyType

from controlplane.approvals import Approval, ApprovalState
from controlplane.budget_status import BudgetStatus
from controlplane.diff import Change
from controlplane.leases import Lease, LeaseGrant
from controlplane.store import RevisionInfo, SidecarHello, SidecarInfo, SpendRow
from faregate.convert import RISK_FROM_PB, RISK_TO_PB, snapshot_from_pb, snapshot_to_pb
from faregate.model import RiskLevel, Snapshot
from faregate.v1 import admin_pb2, control_pb2, types_pb2

_STATE_TO_PB = {
    ApprovalState.PENDING: control_pb2.APPROVAL_STATE_PENDING,
    ApprovalState.APPROVED: control_pb2.APPROVAL_STATE_APPROVED,
    ApprovalState.DENIED: control_pb2.APPROVAL_STATE_DENIED,
    ApprovalState.EXPIRED: control_pb2.APPROVAL_STATE_EXPIRED,
}


def encode_snapshot(snapshot: Snapshot) -> bytes:
    # Deterministic, so equal snapshots are stored as equal bytes.
    return snapshot_to_pb(snapshot).SerializeToString(deterministic=True)


def decode_snapshot(data: bytes) -> Snapshot:
    return snapshot_from_pb(types_pb2.Snapshot.FromString(data))


def hello_from_pb(hello: control_pb2.Hello, controlplane_id: str) -> SidecarHello:
    return SidecarHello(
        sidecar_id=hello.sidecar_id,
        service=hello.service,
        incarnation=hello.incarnation,
        snapshot_version=hello.snapshot_version,
        hostname=hello.hostname,
        controlplane_id=controlplane_id,
    )


def change_to_pb(change: Change) -> admin_pb2.ConfigChange:
    return admin_pb2.ConfigChange(
        kind=change.kind, name=change.name, op=change.op, detail=change.detail
    )


def revision_to_pb(info: RevisionInfo) -> admin_pb2.Revision:
    return admin_pb2.Revision(
        revision=info.revision,
        snapshot_version=info.snapshot_version,
        created_at_unix_ms=info.created_at_unix_ms,
        author=info.author,
        source_name=info.source_name,
        models=info.models,
        capabilities=info.capabilities,
        tenants=info.tenants,
    )


def sidecar_to_pb(info: SidecarInfo) -> admin_pb2.SidecarStatus:
    return admin_pb2.SidecarStatus(
        sidecar_id=info.sidecar_id,
        service=info.service,
        connected=info.connected,
        snapshot_version=info.snapshot_version,
        last_nack_version=info.last_nack_version,
        last_nack_reason=info.last_nack_reason,
        last_seen_unix_ms=info.last_seen_unix_ms,
        incarnation=info.incarnation,
        hostname=info.hostname,
        controlplane_id=info.controlplane_id,
    )


def spend_to_pb(rows: Iterable[SpendRow], window_ms: int, group_by: str) -> admin_pb2.SpendResponse:
    messages = [
        admin_pb2.SpendRow(
            key=row.key,
            cost_nanos=row.cost_nanos,
            requests=row.requests,
            input_tokens=row.input_tokens,
            cached_input_tokens=row.cached_input_tokens,
            output_tokens=row.output_tokens,
            business_value_nanos=row.business_value_nanos,
        )
        for row in rows
    ]
    return admin_pb2.SpendResponse(
        rows=messages,
        total_cost_nanos=sum(row.cost_nanos for row in messages),
        total_requests=sum(row.requests for row in messages),
        window_ms=window_ms,
        group_by=group_by,
    )


def approval_from_pb(
    request: control_pb2.ApprovalRequest,
    *,
    sidecar_id: str,
    service: str,
    now_ms: int,
    approval_ttl_ms: int,
) -> Approval:
    """A pending approval as it arrives; it waits `approval_ttl_ms` for a decision."""
    # An unset or unknown risk is stored as "" rather than guessed.
    risk = RISK_FROM_PB.get(request.risk)
    return Approval(
        approval_id=request.approval_id,
        sidecar_id=sidecar_id,
        service=service,
        capability=request.capability,
        tenant=request.tenant,
        team=request.team,
        model=request.model,
        estimated_cost_nanos=request.estimated_cost_nanos,
        risk=risk.value if risk is not None else "",
        idempotency_key=request.idempotency_key,
        decision_id=request.decision_id,
        requested_at_ms=now_ms,
        expires_at_ms=now_ms + approval_ttl_ms,
        labels=MappingProxyType(dict(request.labels)),
        updated_at_ms=now_ms,
    )


def decision_to_pb(approval: Approval) -> control_pb2.ApprovalDecision:
    return control_pb2.ApprovalDecision(
        approval_id=approval.approval_id,
        state=_STATE_TO_PB[approval.state],
        expires_at_unix_ms=approval.expires_at_ms,
        max_uses=approval.max_uses,
        decided_by=approval.decided_by,
        reason=approval.reason,
        decided_at_unix_ms=approval.decided_at_ms,
    )


def approval_to_pb(approval: Approval) -> admin_pb2.Approval:
    request = control_pb2.ApprovalRequest(
        approval_id=approval.approval_id,
        capability=approval.capability,
        tenant=approval.tenant,
        team=approval.team,
        model=approval.model,
        estimated_cost_nanos=approval.estimated_cost_nanos,
        labels=dict(approval.labels),
        idempotency_key=approval.idempotency_key,
        decision_id=approval.decision_id,
    )
    if approval.risk in {level.value for level in RiskLevel}:
        request.risk = RISK_TO_PB[RiskLevel(approval.risk)]
    return admin_pb2.Approval(
        request=request,
        decision=decision_to_pb(approval),
        sidecar_id=approval.sidecar_id,
        requested_at_unix_ms=approval.requested_at_ms,
        service=approval.service,
    )


def lease_grant_to_pb(
    grant: LeaseGrant, *, refresh_after_ms: int, soft_threshold_crossed: bool
) -> control_pb2.LeaseGrant:
    lease = grant.lease
    return control_pb2.LeaseGrant(
        budget=lease.budget,
        lease_id=lease.lease_id,
        granted_nanos=lease.granted_nanos,
        expires_at_unix_ms=lease.expires_at_ms,
        refresh_after_ms=refresh_after_ms,
        period_key=lease.period_key,
        soft_threshold_crossed=soft_threshold_crossed,
        ttl_ms=lease.ttl_ms,
        budget_committed_nanos=grant.committed_nanos,
        budget_limit_nanos=grant.limit_nanos,
        reason=grant.reason,
    )


def budget_status_to_pb(status: BudgetStatus) -> admin_pb2.BudgetStatus:
    return admin_pb2.BudgetStatus(
        name=status.name,
        period_key=status.period_key,
        limit_nanos=status.limit_nanos,
        committed_nanos=status.committed_nanos,
        outstanding_nanos=status.outstanding_nanos,
        remaining_nanos=status.remaining_nanos,
        forfeited_nanos=status.forfeited_nanos,
        late_nanos=status.late_nanos,
        burn_rate_nanos_per_hour=status.burn_rate_nanos_per_hour,
        projected_exhaustion_unix_ms=status.projected_exhaustion_unix_ms,
        mode=status.mode,
        offline_policy=status.offline_policy,
        soft_threshold_crossed=status.soft_threshold_crossed,
        scope=status.scope,
        open_leases=status.open_leases,
        period_end_unix_ms=status.period_end_unix_ms,
    )


def lease_to_pb(lease: Lease) -> admin_pb2.LeaseStatus:
    return admin_pb2.LeaseStatus(
        lease_id=lease.lease_id,
        budget=lease.budget,
        period_key=lease.period_key,
        sidecar_id=lease.sidecar_id,
        service=lease.service,
        incarnation=lease.incarnation,
        granted_nanos=lease.granted_nanos,
        applied_nanos=lease.applied_nanos,
        held_nanos=lease.held_nanos,
        expires_at_unix_ms=lease.expires_at_ms,
        state=lease.state.value,
        created_at_unix_ms=lease.created_at_ms,
        updated_at_unix_ms=lease.updated_at_ms,
    )
