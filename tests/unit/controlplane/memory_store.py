"""An in-memory `controlplane.store.Store` for testing the services without SQL.

Leases follow the same rules as `controlplane.sql_leases` (the pure allocator, one
lease per holder and period, reopened holding nothing), without locks: the services'
tests are single-threaded."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from controlplane.allocation import Ask, BudgetState, Holding, allocate
from controlplane.approvals import (
    Approval,
    ApprovalState,
    Verdict,
    decide,
    lapse,
    worth_replaying,
)
from controlplane.leases import (
    BudgetTotals,
    Lease,
    LeaseAsk,
    LeaseGrant,
    LeaseState,
    lease_id,
)
from controlplane.store import (
    AppendResult,
    BatchResult,
    RevisionInfo,
    SidecarHello,
    SidecarInfo,
    SpendGroup,
    SpendRow,
    UsageBatch,
)
from faregate.budget_rules import is_offline_lease
from faregate.model import Snapshot, UsageRecord


class MemoryStore:
    def __init__(self) -> None:
        self.revisions: list[tuple[RevisionInfo, Snapshot]] = []
        self.sidecars: dict[str, SidecarInfo] = {}
        self.nacks: set[tuple[str, str]] = set()
        self.batches: set[tuple[str, str, int]] = set()
        self.ledger: dict[str, UsageRecord] = {}
        self.approvals: dict[str, Approval] = {}
        self.leases: dict[str, Lease] = {}
        # (budget, period key) -> [committed, forfeited, late]
        self.periods: dict[tuple[str, str], list[int]] = {}

    def latest_revision(self) -> RevisionInfo | None:
        return self.revisions[-1][0] if self.revisions else None

    def list_revisions(self, limit: int) -> Sequence[RevisionInfo]:
        return [info for info, _ in reversed(self.revisions)][:limit]

    def get_snapshot(self, revision: int) -> Snapshot | None:
        return next((s for info, s in self.revisions if info.revision == revision), None)

    def append_revision(
        self,
        snapshot: Snapshot,
        *,
        yaml_text: str,
        source_name: str,
        author: str,
        created_at_unix_ms: int,
    ) -> AppendResult:
        latest = self.latest_revision()
        if latest is not None and latest.snapshot_version == snapshot.version:
            return AppendResult(latest, created=False)
        number = len(self.revisions) + 1
        stored = dataclasses.replace(
            snapshot, revision=number, created_at_unix_ms=created_at_unix_ms
        )
        info = RevisionInfo(
            number,
            stored.version,
            created_at_unix_ms,
            author,
            source_name,
            len(stored.models),
            len(stored.capabilities),
            len(stored.tenants),
        )
        self.revisions.append((info, stored))
        return AppendResult(info, created=True)

    def sidecar_connected(self, hello: SidecarHello, now_ms: int) -> None:
        old = self.sidecars.get(hello.sidecar_id)
        self.sidecars[hello.sidecar_id] = SidecarInfo(
            sidecar_id=hello.sidecar_id,
            service=hello.service,
            connected=True,
            snapshot_version=hello.snapshot_version,
            last_nack_version=old.last_nack_version if old else "",
            last_nack_reason=old.last_nack_reason if old else "",
            last_seen_unix_ms=now_ms,
            incarnation=hello.incarnation,
            hostname=hello.hostname,
            controlplane_id=hello.controlplane_id,
        )

    def _update(self, sidecar_id: str, **changes: object) -> None:
        self.sidecars[sidecar_id] = dataclasses.replace(self.sidecars[sidecar_id], **changes)  # type: ignore[arg-type]

    def sidecar_seen(self, sidecar_id: str, snapshot_version: str, now_ms: int) -> None:
        self._update(sidecar_id, last_seen_unix_ms=now_ms)

    def sidecar_acked(self, sidecar_id: str, version: str, now_ms: int) -> None:
        self._update(sidecar_id, snapshot_version=version, last_seen_unix_ms=now_ms)

    def sidecar_nacked(self, sidecar_id: str, version: str, reason: str, now_ms: int) -> None:
        self._update(sidecar_id, last_nack_version=version, last_nack_reason=reason)
        self.nacks.add((sidecar_id, version))

    def nacked_versions(self, sidecar_id: str) -> frozenset[str]:
        return frozenset(v for s, v in self.nacks if s == sidecar_id)

    def sidecar_disconnected(self, sidecar_id: str, controlplane_id: str, now_ms: int) -> None:
        if self.sidecars[sidecar_id].controlplane_id == controlplane_id:
            self._update(sidecar_id, connected=False)

    def disconnect_all(self, controlplane_id: str, now_ms: int) -> int:
        ids = [s.sidecar_id for s in self.sidecars.values() if s.controlplane_id == controlplane_id]
        for sidecar_id in ids:
            self._update(sidecar_id, connected=False)
        return len(ids)

    def list_sidecars(self) -> Sequence[SidecarInfo]:
        return list(self.sidecars.values())

    def apply_usage_batch(self, batch: UsageBatch, now_ms: int) -> BatchResult:
        key = (batch.sidecar_id, batch.incarnation, batch.seq)
        if key in self.batches:
            return BatchResult(duplicate=True, applied=0)
        self.batches.add(key)
        fresh = {r.decision_id: r for r in batch.records if r.decision_id not in self.ledger}
        self.ledger.update(fresh)
        late_records = late_nanos = closed = 0
        for record in fresh.values():
            for charge in record.charges:
                lease = self.leases.get(charge.lease_id)
                if lease is None or is_offline_lease(charge.lease_id):
                    period = self._period(charge.budget, charge.period_key)
                    period[0] += record.cost_nanos
                    continue
                period = self._period(lease.budget, lease.period_key)
                self.leases[lease.lease_id] = dataclasses.replace(
                    lease, applied_nanos=lease.applied_nanos + record.cost_nanos
                )
                period[0] += record.cost_nanos
                if lease.state is not LeaseState.OPEN:
                    period[2] += record.cost_nanos
                    late_records += 1
                    late_nanos += record.cost_nanos
        for close in batch.closes:
            lease = self.leases.get(close.lease_id)
            if lease is None or lease.state is not LeaseState.OPEN:
                continue
            state = LeaseState.FORFEITED if close.forfeit else LeaseState.CLOSED
            if close.forfeit:
                period = self._period(lease.budget, lease.period_key)
                period[0] += lease.held_nanos
                period[1] += lease.held_nanos
            self.leases[lease.lease_id] = dataclasses.replace(lease, state=state)
            closed += 1
        return BatchResult(
            duplicate=False,
            applied=len(fresh),
            late_records=late_records,
            late_nanos=late_nanos,
            closed=closed,
        )

    def _period(self, budget: str, key: str) -> list[int]:
        return self.periods.setdefault((budget, key), [0, 0, 0])

    def grant_lease(self, ask: LeaseAsk) -> LeaseGrant:
        period = self._period(ask.budget, ask.period_key)
        lid = lease_id(ask.sidecar_id, ask.incarnation, ask.budget, ask.period_key)
        mine = self.leases.get(lid)
        others = [
            lease
            for lease in self.leases.values()
            if (lease.budget, lease.period_key) == (ask.budget, ask.period_key)
            and lease.state is LeaseState.OPEN
            and lease.lease_id != lid
        ]
        applied = mine.applied_nanos if mine is not None else 0
        granted = mine.granted_nanos if mine and mine.state is LeaseState.OPEN else applied
        state = BudgetState(
            ask.limit_nanos,
            period[0],
            [Holding(o.granted_nanos, o.applied_nanos, o.demand_nanos_per_s) for o in others],
        )
        allocation = allocate(
            state, Ask(ask.requested_nanos, ask.demand_nanos_per_s, granted, applied)
        )
        lease = Lease(
            lease_id=lid,
            budget=ask.budget,
            period_key=ask.period_key,
            sidecar_id=ask.sidecar_id,
            service=ask.service,
            incarnation=ask.incarnation,
            granted_nanos=granted + allocation.delta_nanos,
            applied_nanos=applied,
            demand_nanos_per_s=ask.demand_nanos_per_s,
            expires_at_ms=ask.now_ms + ask.ttl_ms,
            ttl_ms=ask.ttl_ms,
            state=LeaseState.OPEN,
            created_at_ms=mine.created_at_ms if mine is not None else ask.now_ms,
            updated_at_ms=ask.now_ms,
        )
        self.leases[lid] = lease
        return LeaseGrant(
            lease=lease,
            delta_nanos=allocation.delta_nanos,
            reason=allocation.reason(ask.requested_nanos),
            limit_nanos=ask.limit_nanos,
            committed_nanos=period[0],
            outstanding_nanos=state.outstanding_nanos + lease.held_nanos,
        )

    def list_leases(self, *, include_closed: bool) -> Sequence[Lease]:
        listed = [
            lease
            for lease in self.leases.values()
            if include_closed or lease.state is LeaseState.OPEN
        ]
        return sorted(listed, key=lambda x: (x.budget, x.period_key, x.sidecar_id, x.lease_id))

    def budget_totals(self, keys: Sequence[tuple[str, str]]) -> Sequence[BudgetTotals]:
        totals = []
        for budget, key in keys:
            committed, forfeited, late = self.periods.get((budget, key), [0, 0, 0])
            held = [
                lease.held_nanos
                for lease in self.leases.values()
                if (lease.budget, lease.period_key) == (budget, key)
                and lease.state is LeaseState.OPEN
            ]
            totals.append(
                BudgetTotals(budget, key, committed, sum(held), forfeited, late, len(held))
            )
        return totals

    def budget_burn(self, budgets: Sequence[str], since_ms: int) -> dict[str, int]:
        burn = dict.fromkeys(budgets, 0)
        for record in self.ledger.values():
            if record.reported_at_unix_ms < since_ms:
                continue
            names = set(record.budgets) | {c.budget for c in record.charges}
            for name in names & burn.keys():
                burn[name] += record.cost_nanos
        return burn

    def expire_leases(self, before_ms: int, now_ms: int) -> int:
        lapsed = [
            lease
            for lease in self.leases.values()
            if lease.state is LeaseState.OPEN and lease.expires_at_ms < before_ms
        ]
        for lease in lapsed:
            self.leases[lease.lease_id] = dataclasses.replace(
                lease, state=LeaseState.EXPIRED, updated_at_ms=now_ms
            )
        return len(lapsed)

    def spend(self, group_by: SpendGroup, since_ms: int | None) -> Sequence[SpendRow]:
        totals: dict[str, SpendRow] = {}
        for r in self.ledger.values():
            if since_ms is not None and r.reported_at_unix_ms < since_ms:
                continue
            key = f"{r.tenant}/{r.team}" if group_by is SpendGroup.TEAM else getattr(r, group_by)
            old = totals.get(key, SpendRow(key, 0, 0, 0, 0, 0, 0))
            totals[key] = SpendRow(
                key,
                old.cost_nanos + r.cost_nanos,
                old.requests + 1,
                old.input_tokens + r.input_tokens,
                old.cached_input_tokens + r.cached_input_tokens,
                old.output_tokens + r.output_tokens,
                old.business_value_nanos + r.business_value_nanos,
            )
        return sorted(totals.values(), key=lambda row: (-row.cost_nanos, row.key))

    def add_approval(self, approval: Approval) -> tuple[Approval, bool]:
        if approval.approval_id in self.approvals:
            return self.approvals[approval.approval_id], False
        self.approvals[approval.approval_id] = approval
        return approval, True

    def expire_approvals(self, now_ms: int) -> int:
        lapsed = [a for a in self.approvals.values() if lapse(a, now_ms) is not a]
        for approval in lapsed:
            self.approvals[approval.approval_id] = lapse(approval, now_ms)
        return len(lapsed)

    def list_approvals(self, *, include_decided: bool, now_ms: int) -> Sequence[Approval]:
        self.expire_approvals(now_ms)
        listed = [
            a
            for a in self.approvals.values()
            if include_decided or a.state is ApprovalState.PENDING
        ]
        return sorted(listed, key=lambda a: (-a.requested_at_ms, a.approval_id))

    def decide_approval(
        self, approval_id: str, verdict: Verdict, now_ms: int
    ) -> tuple[Approval, bool] | None:
        if approval_id not in self.approvals:
            return None
        after, taken = decide(self.approvals[approval_id], verdict, now_ms)
        self.approvals[approval_id] = after
        return after, taken

    def approvals_changed_since(self, since_ms: int) -> Sequence[Approval]:
        changed = [a for a in self.approvals.values() if a.updated_at_ms > since_ms]
        return sorted(changed, key=lambda a: (a.updated_at_ms, a.approval_id))

    def approvals_to_replay(self, sidecar_id: str, now_ms: int) -> Sequence[Approval]:
        return [a for a in self.approvals.values() if worth_replaying(a, sidecar_id, now_ms)]

    def close(self) -> None:
        pass
