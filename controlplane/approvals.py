"""Approvals as the control plane keeps them: the record, its states and their rules.

A sidecar that answers APPROVAL_REQUIRED sends the request (never prompt text); it
waits here as `pending` until an operator approves or denies it, or until
`approval_ttl` (from the governance in force when it arrived) runs out and it is
`expired`. A decision is taken once: deciding a closed approval changes nothing and
says why. An approval is granted for a bounded time (`valid_for_ms`, at most
`MAX_GRANT_MS`) and number of uses: authority to spend always expires.

The store applies these rules inside its transactions; the services turn them into
gRPC statuses. Pure: must not import grpc, sqlalchemy or `faregate.v1`; reads no clock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType

from faregate.model import Snapshot
from faregate.policy import Governance, PolicyDecodeError, governance_from_json

MAX_GRANT_MS = 30 * 86_400_000  # an approval longer than a month is a policy, not a grant
MAX_USES = 1_000_000
# A sidecar that reconnects is told about its denials this recent: long enough to
# cover a pending request it still holds (the default approval TTL is one hour).
RECENT_DENIAL_MS = 86_400_000


class ApprovalState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Approval:
    """One request for approval and, once taken, its decision.

    `expires_at_ms` is when a pending request lapses, or when an approved one stops
    being valid; `updated_at_ms` moves on every change so replicas can poll for them.
    """

    approval_id: str
    sidecar_id: str
    service: str
    capability: str
    tenant: str
    team: str
    model: str
    estimated_cost_nanos: int
    risk: str
    idempotency_key: str
    decision_id: str
    requested_at_ms: int
    expires_at_ms: int
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    state: ApprovalState = ApprovalState.PENDING
    decided_by: str = ""
    decided_at_ms: int = 0
    reason: str = ""
    max_uses: int = 0
    updated_at_ms: int = 0

    @property
    def decided(self) -> bool:
        return self.state in (ApprovalState.APPROVED, ApprovalState.DENIED)


@dataclass(frozen=True, slots=True)
class Verdict:
    """An operator's decision, with the grant's duration and uses already resolved."""

    approve: bool
    decided_by: str
    reason: str = ""
    valid_for_ms: int = 0
    max_uses: int = 0


def governance_of(snapshot: Snapshot | None) -> Governance:
    """The governance in force: the current snapshot's, else the defaults.

    The control plane validated the snapshot before storing it, so a section it cannot
    read is one from an older release; the defaults are the documented policy then.
    """
    if snapshot is None:
        return Governance()
    try:
        return governance_from_json(snapshot.governance)
    except PolicyDecodeError:
        return Governance()


def verdict_problem(valid_for_ms: int, max_uses: int, approve: bool) -> str | None:
    """What is wrong with a requested verdict (`field: message`), or None.

    0 means "the governance default" for both fields; a denial grants nothing, so
    giving it a duration or uses is a mistake worth pointing out.
    """
    if valid_for_ms < 0:
        return "valid_for_ms: must not be negative (0 means the default grant)"
    if valid_for_ms > MAX_GRANT_MS:
        return f"valid_for_ms: must be at most {MAX_GRANT_MS // 86_400_000} days"
    if max_uses < 0:
        return "max_uses: must not be negative (0 means the default)"
    if max_uses > MAX_USES:
        return f"max_uses: must be at most {MAX_USES:,}"
    if not approve and (valid_for_ms or max_uses):
        field_name = "valid_for_ms" if valid_for_ms else "max_uses"
        return f"{field_name}: only an approval has a duration and uses, not a denial"
    return None


def lapse(approval: Approval, now_ms: int) -> Approval:
    """The approval as of `now_ms`: a pending one whose wait ran out is expired."""
    if approval.state is ApprovalState.PENDING and approval.expires_at_ms <= now_ms:
        return dataclasses.replace(approval, state=ApprovalState.EXPIRED, updated_at_ms=now_ms)
    return approval


def decide(approval: Approval, verdict: Verdict, now_ms: int) -> tuple[Approval, bool]:
    """The approval after `verdict`, and whether the verdict took.

    It does not take on an approval already decided or expired (which may have
    expired just now: the returned approval then says so and should be stored).
    """
    current = lapse(approval, now_ms)
    if current.state is not ApprovalState.PENDING:
        return current, False
    if verdict.approve:
        decided = dataclasses.replace(
            current,
            state=ApprovalState.APPROVED,
            expires_at_ms=now_ms + verdict.valid_for_ms,
            max_uses=verdict.max_uses,
        )
    else:
        decided = dataclasses.replace(
            current, state=ApprovalState.DENIED, expires_at_ms=0, max_uses=0
        )
    decided = dataclasses.replace(
        decided,
        decided_by=verdict.decided_by,
        decided_at_ms=now_ms,
        reason=verdict.reason,
        updated_at_ms=now_ms,
    )
    return decided, True


def _when(unix_ms: int) -> str:
    return datetime.fromtimestamp(unix_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def closed_message(approval: Approval) -> str:
    """Why a verdict on this approval did not take, for the operator."""
    if approval.state is ApprovalState.EXPIRED:
        return (
            f"approval {approval.approval_id} expired at {_when(approval.expires_at_ms)} "
            "before anyone decided; the service must ask again"
        )
    who = approval.decided_by or "someone"
    return (
        f"approval {approval.approval_id} was already {approval.state.value} by {who} "
        f"at {_when(approval.decided_at_ms)}"
    )


def worth_replaying(approval: Approval, sidecar_id: str, now_ms: int) -> bool:
    """Whether a sidecar reconnecting as `sidecar_id` should hear this decision again:
    its own approvals that are still valid, or were denied recently."""
    if approval.sidecar_id != sidecar_id:
        return False
    if approval.state is ApprovalState.APPROVED:
        return approval.expires_at_ms > now_ms
    if approval.state is ApprovalState.DENIED:
        return approval.decided_at_ms >= now_ms - RECENT_DENIAL_MS
    return False
