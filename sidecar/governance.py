"""Governance: risk level by estimated-cost band → allow, approval or deny; and approvals.

The chosen route's worst-case cost falls in a band (`governance.cost_bands`); the
request's risk and that band pick an action from the matrix, fired as
`governance:RISK{TIMES}BAND->ACTION` (TIMES is the multiplication sign, as in
docs/policy.md: `governance:high` + sign + `high->approval`). `allow` lets the
decision go on to throttles, `deny` is `DENY`, `approval` is `APPROVAL_REQUIRED`
with an approval id: the request is written into the approval book, which queues
it for the control plane.

A retry names its approval by `approval_id`, or by repeating tenant, capability
and `idempotency_key`. Approved, unexpired and with uses left: the gate is skipped
(`approval:granted`) and one use is counted if the call runs. Denied: `DENY`
(`approval:denied`, with the operator's reason). Still pending and still needing
approval: `APPROVAL_REQUIRED` with the same id (`approval:pending`). Expired,
exhausted, for another request, or unknown here: decided afresh, and the rule
says why. A dry run reads the book but never writes it: it answers
`APPROVAL_REQUIRED` without an id rather than open a request.

Pure: must not import gRPC or the wire types (`faregate.v1`), nor read a clock.
"""

from __future__ import annotations

from faregate.model import Action
from sidecar.approvals import ApprovalRequest, ApprovalState
from sidecar.context import RouteContext, refuse
from sidecar.decision import Decision

TIMES = "\N{MULTIPLICATION SIGN}"  # as docs/policy.md writes the rule


def _approved_retry(ctx: RouteContext) -> tuple[Decision | None, bool, str]:
    """(decision, skip the gate, pending approval id) for a retry naming an approval."""
    request = ctx.request
    status = ctx.runtime.approvals.find(
        request.approval_id,
        request.tenant,
        request.capability,
        request.idempotency_key,
        ctx.now_ms,
        ctx.policy.governance,
    )
    if status is None:
        if request.approval_id:
            ctx.fire("approval:unknown", f"{request.approval_id} is unknown here; deciding afresh")
        return None, False, ""
    approval_id = status.approval_id
    if status.state is ApprovalState.APPROVED:
        by = f" by {status.decided_by}" if status.decided_by else ""
        ctx.fire(
            "approval:granted",
            f"{approval_id}{by}, {status.uses_left} of {status.max_uses} uses left",
        )
        ctx.approval_use = approval_id
        return None, True, ""
    if status.state is ApprovalState.DENIED:
        reason = status.reason or "no reason given"
        ctx.fire("approval:denied", f"{approval_id}: {reason}")
        return refuse(ctx, Action.DENY, f"approval {approval_id} was denied: {reason}"), True, ""
    if status.state is ApprovalState.PENDING:
        return None, False, approval_id
    ctx.fire(f"approval:{status.state.value}", f"{approval_id}; deciding afresh")
    return None, False, ""


def gate(ctx: RouteContext) -> Decision | None:
    request = ctx.request
    chosen = ctx.chosen
    assert chosen is not None
    pending_id = ""
    if request.approval_id or request.idempotency_key:
        decision, skip, pending_id = _approved_retry(ctx)
        if decision is not None or skip:
            return decision
    governance = ctx.policy.governance
    cost = chosen.worst_case_cost_nanos
    risk = request.risk.value
    band = governance.band(cost)
    action = governance.action(risk, band)
    if action == "allow":
        return None
    ctx.fire(
        f"governance:{risk}{TIMES}{band}->{action}",
        f"{chosen.model.name} at {cost} nanos worst case is in the {band} cost band",
    )
    what = f"{risk} risk at {band} cost ({chosen.model.name})"
    if action != "approval":
        return refuse(ctx, Action.DENY, f"{what} is not allowed by governance")
    if pending_id:
        ctx.fire("approval:pending", f"{pending_id} awaits an operator")
        return refuse(
            ctx,
            Action.APPROVAL_REQUIRED,
            f"{what} needs approval; {pending_id} is still pending",
            approval_id=pending_id,
        )
    if request.dry_run:
        return refuse(
            ctx, Action.APPROVAL_REQUIRED, f"{what} needs approval (dry run: none requested)"
        )
    approval_id = ctx.runtime.new_approval_id()
    ctx.runtime.approvals.open(
        ApprovalRequest(
            approval_id=approval_id,
            capability=request.capability,
            tenant=request.tenant,
            team=request.team,
            model=chosen.model.name,
            estimated_cost_nanos=cost,
            risk=request.risk,
            labels=request.labels,
            idempotency_key=request.idempotency_key,
            decision_id=ctx.decision_id,
        ),
        ctx.now_ms,
        ctx.policy.governance.approval_ttl_ms,
    )
    return refuse(
        ctx,
        Action.APPROVAL_REQUIRED,
        f"{what} needs approval; retry with approval id {approval_id} once it is granted",
        approval_id=approval_id,
    )
