"""What `faregate approvals` shows: the approvals table, a decision and its summary.

Built like every `clients.views` view (formatted cells and JSON data in one pass).
Pure: takes the typed results and the current time as arguments; must not import
gRPC, click, the wire types or the servers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from clients.admin_results import Approval, ApprovalDecision
from clients.durations import format_ago, format_in
from clients.views import Column, View, format_when, plural
from faregate.pricing import format_usd


def _relative(unix_ms: int, now_ms: int) -> str:
    if unix_ms <= 0:
        return "—"
    if unix_ms <= now_ms:
        return format_ago(now_ms - unix_ms)
    return format_in(unix_ms - now_ms)


def _approval_data(a: Approval) -> dict[str, Any]:
    d = a.decision
    return {
        "approval_id": a.approval_id,
        "state": d.state,
        "capability": a.capability,
        "tenant": a.tenant,
        "team": a.team,
        "model": a.model,
        "estimated_cost_nanos": a.estimated_cost_nanos,
        "risk": a.risk,
        "labels": dict(a.labels),
        "idempotency_key": a.idempotency_key,
        "decision_id": a.decision_id,
        "sidecar_id": a.sidecar_id,
        "service": a.service,
        "requested_at_unix_ms": a.requested_at_unix_ms,
        "expires_at_unix_ms": d.expires_at_unix_ms,
        "max_uses": d.max_uses,
        "decided_by": d.decided_by,
        "decided_at_unix_ms": d.decided_at_unix_ms,
        "reason": d.reason,
    }


def approvals_view(approvals: Sequence[Approval], now_ms: int, *, include_decided: bool) -> View:
    """Approvals newest first; pending ones are highlighted (someone has to act)."""
    columns = (
        Column("approval"),
        Column("state"),
        Column("capability"),
        Column("tenant/team"),
        Column("model"),
        Column("est. cost", numeric=True),
        Column("risk"),
        Column("requested", numeric=True),
        Column("decided"),
        Column("expires", numeric=True),
    )
    rows, pending = [], set()
    for index, a in enumerate(approvals):
        d = a.decision
        if d.state == "pending":
            pending.add(index)
        decided = "—"
        if d.decided_by or d.decided_at_unix_ms:
            decided = f"{d.decided_by or '?'}, {_relative(d.decided_at_unix_ms, now_ms)}"
            if d.reason:
                decided += f": {d.reason}"
        expires = (
            _relative(d.expires_at_unix_ms, now_ms) if d.state in ("pending", "approved") else "—"
        )
        if d.state == "approved" and d.max_uses:
            expires += f" ({plural(d.max_uses, 'use')})"
        rows.append(
            (
                a.approval_id,
                d.state,
                a.capability,
                "/".join(part for part in (a.tenant, a.team) if part) or "—",
                a.model or "—",
                format_usd(a.estimated_cost_nanos, 6),
                a.risk or "—",
                _relative(a.requested_at_unix_ms, now_ms),
                decided,
                expires,
            )
        )
    title = "Approvals" if include_decided else "Pending approvals"
    caption = ""
    if pending:
        caption = "faregate approvals approve ID [--for 1h] | deny ID --reason TEXT"
    return View(
        title,
        columns,
        rows,
        [_approval_data(a) for a in approvals],
        highlight=frozenset(pending),
        caption=caption,
    )


def decision_data(decision: ApprovalDecision) -> dict[str, Any]:
    return {
        "approval_id": decision.approval_id,
        "state": decision.state,
        "expires_at_unix_ms": decision.expires_at_unix_ms,
        "max_uses": decision.max_uses,
        "decided_by": decision.decided_by,
        "decided_at_unix_ms": decision.decided_at_unix_ms,
        "reason": decision.reason,
    }


def decision_summary(decision: ApprovalDecision) -> str:
    if decision.state == "approved":
        until = format_when(decision.expires_at_unix_ms)
        return (
            f"Approved {decision.approval_id}: valid until {until} for "
            f"{plural(decision.max_uses, 'use')}; sidecars hear it within a second."
        )
    reason = f" ({decision.reason})" if decision.reason else ""
    return f"Denied {decision.approval_id}{reason}; sidecars hear it within a second."
