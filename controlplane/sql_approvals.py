"""The approvals part of the SQL store, mixed into `SqlStore`.

A request is stored once per `approval_id` (INSERT ... ON CONFLICT DO NOTHING), so a
sidecar resending it after a reconnect, or to another replica, changes nothing. A
decision reads the row under a lock (SELECT ... FOR UPDATE on PostgreSQL; SQLite's
BEGIN IMMEDIATE already serialises writers), applies `controlplane.approvals.decide`
and writes the result in the same transaction, so two operators deciding at once
through two replicas cannot both win. Every write sets `updated_at_ms`, which the
replicas poll to push decisions to their sidecars.

May import sqlalchemy; must not import grpc or `faregate.v1`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from controlplane.approvals import (
    RECENT_DENIAL_MS,
    Approval,
    ApprovalState,
    Verdict,
    decide,
    worth_replaying,
)
from controlplane.sql_schema import approvals


def _row_values(approval: Approval) -> dict[str, Any]:
    return {
        "approval_id": approval.approval_id,
        "sidecar_id": approval.sidecar_id,
        "service": approval.service,
        "decision_id": approval.decision_id,
        "idempotency_key": approval.idempotency_key,
        "capability": approval.capability,
        "tenant": approval.tenant,
        "team": approval.team,
        "model": approval.model,
        "risk": approval.risk,
        "estimated_cost_nanos": approval.estimated_cost_nanos,
        "labels": json.dumps(dict(approval.labels), sort_keys=True),
        "state": approval.state.value,
        "requested_at_ms": approval.requested_at_ms,
        "decided_at_ms": approval.decided_at_ms or None,
        "decided_by": approval.decided_by,
        "reason": approval.reason,
        "expires_at_ms": approval.expires_at_ms or None,
        "max_uses": approval.max_uses,
        "uses": 0,
        "updated_at_ms": approval.updated_at_ms,
    }


def _approval(row: Any) -> Approval:
    return Approval(
        approval_id=row.approval_id,
        sidecar_id=row.sidecar_id,
        service=row.service,
        capability=row.capability,
        tenant=row.tenant,
        team=row.team,
        model=row.model,
        estimated_cost_nanos=row.estimated_cost_nanos,
        risk=row.risk,
        idempotency_key=row.idempotency_key,
        decision_id=row.decision_id,
        requested_at_ms=row.requested_at_ms,
        expires_at_ms=row.expires_at_ms or 0,
        labels=MappingProxyType(json.loads(row.labels or "{}")),
        state=ApprovalState(row.state),
        decided_by=row.decided_by,
        decided_at_ms=row.decided_at_ms or 0,
        reason=row.reason,
        max_uses=row.max_uses,
        updated_at_ms=row.updated_at_ms,
    )


def _expire(connection: sa.Connection, now_ms: int) -> int:
    result = connection.execute(
        approvals.update()
        .where(
            approvals.c.state == ApprovalState.PENDING.value,
            approvals.c.expires_at_ms <= now_ms,
        )
        .values(state=ApprovalState.EXPIRED.value, updated_at_ms=now_ms)
    )
    return result.rowcount


class SqlApprovals:
    """The `Store` methods for approvals; `SqlStore` provides the engine."""

    _engine: sa.Engine

    def add_approval(self, approval: Approval) -> tuple[Approval, bool]:
        with self._engine.begin() as connection:
            dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
            inserted = connection.execute(
                dialect.insert(approvals)
                .values(**_row_values(approval))
                .on_conflict_do_nothing(index_elements=[approvals.c.approval_id])
                .returning(approvals.c.approval_id)
            ).first()
            row = connection.execute(
                sa.select(approvals).where(approvals.c.approval_id == approval.approval_id)
            ).one()
        return _approval(row), inserted is not None

    def list_approvals(self, *, include_decided: bool, now_ms: int) -> Sequence[Approval]:
        query = sa.select(approvals).order_by(
            approvals.c.requested_at_ms.desc(), approvals.c.approval_id
        )
        if not include_decided:
            query = query.where(approvals.c.state == ApprovalState.PENDING.value)
        with self._engine.begin() as connection:
            _expire(connection, now_ms)
            return [_approval(row) for row in connection.execute(query)]

    def decide_approval(
        self, approval_id: str, verdict: Verdict, now_ms: int
    ) -> tuple[Approval, bool] | None:
        query = sa.select(approvals).where(approvals.c.approval_id == approval_id)
        with self._engine.begin() as connection:
            row = connection.execute(query.with_for_update()).first()
            if row is None:
                return None
            before = _approval(row)
            after, taken = decide(before, verdict, now_ms)
            if after != before:
                values = _row_values(after)
                del values["approval_id"]
                connection.execute(
                    approvals.update()
                    .where(approvals.c.approval_id == approval_id)
                    .values(**values)
                )
        return after, taken

    def expire_approvals(self, now_ms: int) -> int:
        with self._engine.begin() as connection:
            return _expire(connection, now_ms)

    def approvals_changed_since(self, since_ms: int) -> Sequence[Approval]:
        query = (
            sa.select(approvals)
            .where(approvals.c.updated_at_ms > since_ms)
            .order_by(approvals.c.updated_at_ms, approvals.c.approval_id)
        )
        with self._engine.connect() as connection:
            return [_approval(row) for row in connection.execute(query)]

    def approvals_to_replay(self, sidecar_id: str, now_ms: int) -> Sequence[Approval]:
        # The SQL narrows by the same rule `worth_replaying` states; the rule decides.
        query = sa.select(approvals).where(
            approvals.c.sidecar_id == sidecar_id,
            sa.or_(
                sa.and_(
                    approvals.c.state == ApprovalState.APPROVED.value,
                    approvals.c.expires_at_ms > now_ms,
                ),
                sa.and_(
                    approvals.c.state == ApprovalState.DENIED.value,
                    approvals.c.decided_at_ms >= now_ms - RECENT_DENIAL_MS,
                ),
            ),
        )
        with self._engine.connect() as connection:
            rows = [_approval(row) for row in connection.execute(query)]
        return [a for a in rows if worth_replaying(a, sidecar_id, now_ms)]
