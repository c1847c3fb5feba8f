"""The budget-lease part of the SQL store, mixed into `SqlStore` (docs/budgets.md).

Every change to a budget period (a grant, usage charged to it, a lease close, an
expiry) first locks that period's `budget_periods` row: SELECT ... FOR UPDATE on
PostgreSQL, so the invariant C + O <= L holds across replicas; on SQLite the store's
BEGIN IMMEDIATE already serialises writers. Transactions touching several periods
lock them in (budget, period key) order, so two replicas cannot deadlock. Lease rows
are changed only under their period's lock, so after taking it a plain SELECT reads
them consistently. A grant is committed before the Sync service sends it.

`charge_and_close` is the part of applying a usage batch that moves money: called by
`controlplane.sql_ledger` inside the batch's transaction, after the ledger insert.

May import sqlalchemy; must not import grpc or `faregate.v1`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from controlplane.allocation import Ask, BudgetState, Holding, allocate
from controlplane.leases import (
    BudgetTotals,
    Lease,
    LeaseAsk,
    LeaseGrant,
    LeaseState,
    lease_id,
)
from controlplane.sql_schema import budget_periods, dialect_insert, leases
from faregate.budget_rules import is_offline_lease
from faregate.model import LeaseClose, UsageRecord

log = logging.getLogger(__name__)

PeriodKey = tuple[str, str]  # (budget, period key)


def _lease(row: Any) -> Lease:
    return Lease(
        lease_id=row.lease_id,
        budget=row.budget,
        period_key=row.period_key,
        sidecar_id=row.sidecar_id,
        service=row.service,
        incarnation=row.incarnation,
        granted_nanos=row.granted_nanos,
        applied_nanos=row.applied_nanos,
        demand_nanos_per_s=row.demand_nanos_per_s,
        expires_at_ms=row.expires_at_ms,
        ttl_ms=row.ttl_ms,
        state=LeaseState(row.state),
        created_at_ms=row.created_at_ms,
        updated_at_ms=row.updated_at_ms,
    )


def lock_periods(
    connection: sa.Connection, keys: Iterable[PeriodKey], now_ms: int
) -> dict[PeriodKey, Any]:
    """The rows of `keys`, created if missing, each locked, in key order."""
    ordered = sorted(set(keys))
    if not ordered:
        return {}
    connection.execute(
        dialect_insert(connection, budget_periods).on_conflict_do_nothing(
            index_elements=[budget_periods.c.budget, budget_periods.c.period_key]
        ),
        [
            {
                "budget": budget,
                "period_key": key,
                "limit_nanos": 0,  # the first grant writes the limit it was made under
                "committed_nanos": 0,
                "forfeited_nanos": 0,
                "late_nanos": 0,
                "updated_at_ms": now_ms,
            }
            for budget, key in ordered
        ],
    )
    # One statement per row keeps the locking order explicit on every planner.
    return {
        (budget, key): connection.execute(
            sa.select(budget_periods)
            .where(budget_periods.c.budget == budget, budget_periods.c.period_key == key)
            .with_for_update()
        ).one()
        for budget, key in ordered
    }


def _open_leases(connection: sa.Connection, budget: str, key: str) -> list[Any]:
    return list(
        connection.execute(
            sa.select(leases).where(
                leases.c.budget == budget,
                leases.c.period_key == key,
                leases.c.state == LeaseState.OPEN.value,
            )
        )
    )


@dataclass(slots=True)
class _Account:
    """A lease as a batch changes it (under its period's lock)."""

    row: Any
    applied: int
    state: LeaseState
    changed: bool = False


@dataclass(slots=True)
class _Period:
    committed: int
    forfeited: int
    late: int
    changed: bool = False


@dataclass(frozen=True, slots=True)
class ChargeResult:
    late_records: int = 0
    late_nanos: int = 0
    closed: int = 0


def _charge(
    charge_lease: _Account | None,
    period: _Period,
    cost: int,
) -> int:
    """Apply one charge of `cost`; returns the late part of it."""
    period.changed = True
    if charge_lease is None:  # an offline allowance, or a lease this store never granted
        period.committed += cost
        return 0
    before = charge_lease.applied
    charge_lease.applied += cost
    charge_lease.changed = True
    if charge_lease.state is LeaseState.OPEN:
        period.committed += cost
        return 0
    late = cost
    if charge_lease.state is LeaseState.FORFEITED:
        # The forfeit already counted the lease's remainder as spent: usage up to it
        # is that money, now accounted for; only the excess is new.
        absorbed = min(cost, max(0, charge_lease.row.granted_nanos - before))
        period.forfeited -= absorbed
        late = cost - absorbed
    period.committed += late
    period.late += late
    return late


def charge_and_close(
    connection: sa.Connection,
    sidecar_id: str,
    records: Sequence[UsageRecord],
    closes: Sequence[LeaseClose],
    now_ms: int,
) -> ChargeResult:
    """Charge `records` (newly in the ledger) to their leases and budget periods, then
    apply `closes`, in the caller's transaction."""
    ids = {c.lease_id for r in records for c in r.charges if not is_offline_lease(c.lease_id)}
    ids.update(close.lease_id for close in closes)
    if not ids and not any(r.charges for r in records):
        return ChargeResult()
    # A lease's budget and period never change: safe to read before locking.
    located: dict[str, PeriodKey] = {}
    if ids:
        query = sa.select(leases.c.lease_id, leases.c.budget, leases.c.period_key)
        for row in connection.execute(query.where(leases.c.lease_id.in_(sorted(ids)))):
            located[row.lease_id] = (row.budget, row.period_key)
    keys = {located.get(c.lease_id, (c.budget, c.period_key)) for r in records for c in r.charges}
    keys.update(located[close.lease_id] for close in closes if close.lease_id in located)
    locked = lock_periods(connection, (k for k in keys if k[1]), now_ms)
    periods = {
        key: _Period(row.committed_nanos, row.forfeited_nanos, row.late_nanos)
        for key, row in locked.items()
    }
    accounts: dict[str, _Account] = {}
    if located:
        query = sa.select(leases).where(leases.c.lease_id.in_(sorted(located)))
        for row in connection.execute(query):
            accounts[row.lease_id] = _Account(row, row.applied_nanos, LeaseState(row.state))
    late_records = late_nanos = 0
    for record in records:
        for c in record.charges:
            key = located.get(c.lease_id, (c.budget, c.period_key))
            if key not in periods:
                continue  # no period known for it: in the ledger, in no budget total
            account = accounts.get(c.lease_id)
            if account is not None and account.row.sidecar_id != sidecar_id:
                # Spend through a lease another sidecar holds still counts in the
                # budget, but must not move that lease's account.
                log.warning("sidecar %s charged lease %s it does not hold", sidecar_id, c.lease_id)
                account = None
            late = _charge(account, periods[key], record.cost_nanos)
            late_records += late > 0
            late_nanos += late
    closed = sum(_close(accounts, periods, located, close, sidecar_id) for close in closes)
    _write(connection, accounts, periods, now_ms)
    return ChargeResult(late_records, late_nanos, closed)


def _close(
    accounts: dict[str, _Account],
    periods: dict[PeriodKey, _Period],
    located: dict[str, PeriodKey],
    close: LeaseClose,
    sidecar_id: str,
) -> bool:
    account = accounts.get(close.lease_id)
    if account is None or account.row.sidecar_id != sidecar_id:
        # A sidecar closes only its own leases (any incarnation of it).
        log.warning("sidecar %s closed lease %s it does not hold", sidecar_id, close.lease_id)
        return False
    if account.state is not LeaseState.OPEN:
        return False  # already ended (e.g. expired): its remainder went back then
    if close.forfeit:
        remainder = max(0, account.row.granted_nanos - account.applied)
        period = periods[located[close.lease_id]]
        period.committed += remainder
        period.forfeited += remainder
        period.changed = True
        account.state = LeaseState.FORFEITED
    else:
        account.state = LeaseState.CLOSED
        if close.spent_nanos != account.applied:
            log.info(
                "lease %s closed at %d spent, %d applied",
                close.lease_id,
                close.spent_nanos,
                account.applied,
            )
    account.changed = True
    return True


def _write(
    connection: sa.Connection,
    accounts: dict[str, _Account],
    periods: dict[PeriodKey, _Period],
    now_ms: int,
) -> None:
    changed = [
        {"b_id": lid, "b_applied": a.applied, "b_state": a.state.value, "b_now": now_ms}
        for lid, a in sorted(accounts.items())
        if a.changed
    ]
    if changed:
        connection.execute(
            leases.update()
            .where(leases.c.lease_id == sa.bindparam("b_id"))
            .values(
                applied_nanos=sa.bindparam("b_applied"),
                state=sa.bindparam("b_state"),
                updated_at_ms=sa.bindparam("b_now"),
            ),
            changed,
        )
    for (budget, key), period in sorted(periods.items()):
        if period.changed:
            connection.execute(
                budget_periods.update()
                .where(budget_periods.c.budget == budget, budget_periods.c.period_key == key)
                .values(
                    committed_nanos=period.committed,
                    forfeited_nanos=period.forfeited,
                    late_nanos=period.late,
                    updated_at_ms=now_ms,
                )
            )


class SqlLeases:
    """The `Store` methods for leases and budget totals; `SqlStore` provides the engine."""

    _engine: sa.Engine

    def grant_lease(self, ask: LeaseAsk) -> LeaseGrant:
        key = (ask.budget, ask.period_key)
        lid = lease_id(ask.sidecar_id, ask.incarnation, ask.budget, ask.period_key)
        with self._engine.begin() as connection:
            period = lock_periods(connection, [key], ask.now_ms)[key]
            others = [row for row in _open_leases(connection, *key) if row.lease_id != lid]
            mine = connection.execute(sa.select(leases).where(leases.c.lease_id == lid)).first()
            applied = mine.applied_nanos if mine is not None else 0
            # A lease that ended returned its remainder: reopened, it holds nothing.
            granted = applied
            if mine is not None and mine.state == LeaseState.OPEN.value:
                # An estimate-mode lease may have spent more than it was granted; the
                # excess is already committed, so a top-up starts from what it spent
                # (otherwise the overspend would swallow every top-up).
                granted = max(mine.granted_nanos, applied)
            state = BudgetState(
                limit_nanos=ask.limit_nanos,
                committed_nanos=period.committed_nanos,
                others=[
                    Holding(row.granted_nanos, row.applied_nanos, row.demand_nanos_per_s)
                    for row in others
                ],
            )
            allocation = allocate(
                state, Ask(ask.requested_nanos, ask.demand_nanos_per_s, granted, applied)
            )
            values = {
                "granted_nanos": granted + allocation.delta_nanos,
                "demand_nanos_per_s": max(0, ask.demand_nanos_per_s),
                "expires_at_ms": ask.now_ms + ask.ttl_ms,
                "ttl_ms": ask.ttl_ms,
                "state": LeaseState.OPEN.value,
                "service": ask.service,
                "updated_at_ms": ask.now_ms,
            }
            if mine is None:
                connection.execute(
                    leases.insert().values(
                        lease_id=lid,
                        budget=ask.budget,
                        period_key=ask.period_key,
                        sidecar_id=ask.sidecar_id,
                        incarnation=ask.incarnation,
                        applied_nanos=0,
                        created_at_ms=ask.now_ms,
                        **values,
                    )
                )
            else:
                connection.execute(leases.update().where(leases.c.lease_id == lid).values(values))
            connection.execute(
                budget_periods.update()
                .where(budget_periods.c.budget == ask.budget, budget_periods.c.period_key == key[1])
                .values(limit_nanos=ask.limit_nanos, updated_at_ms=ask.now_ms)
            )
            row = connection.execute(sa.select(leases).where(leases.c.lease_id == lid)).one()
        lease = _lease(row)
        return LeaseGrant(
            lease=lease,
            delta_nanos=allocation.delta_nanos,
            reason=allocation.reason(ask.requested_nanos),
            limit_nanos=ask.limit_nanos,
            committed_nanos=period.committed_nanos,
            outstanding_nanos=state.outstanding_nanos + lease.held_nanos,
        )

    def list_leases(self, *, include_closed: bool) -> Sequence[Lease]:
        query = sa.select(leases).order_by(
            leases.c.budget, leases.c.period_key, leases.c.sidecar_id, leases.c.lease_id
        )
        if not include_closed:
            query = query.where(leases.c.state == LeaseState.OPEN.value)
        with self._engine.connect() as connection:
            return [_lease(row) for row in connection.execute(query)]

    def budget_totals(self, keys: Sequence[tuple[str, str]]) -> Sequence[BudgetTotals]:
        totals = []
        with self._engine.connect() as connection:
            for budget, key in keys:
                row = connection.execute(
                    sa.select(budget_periods).where(
                        budget_periods.c.budget == budget, budget_periods.c.period_key == key
                    )
                ).first()
                open_leases = [_lease(r) for r in _open_leases(connection, budget, key)]
                totals.append(
                    BudgetTotals(
                        budget=budget,
                        period_key=key,
                        committed_nanos=row.committed_nanos if row is not None else 0,
                        outstanding_nanos=sum(lease.held_nanos for lease in open_leases),
                        forfeited_nanos=row.forfeited_nanos if row is not None else 0,
                        late_nanos=row.late_nanos if row is not None else 0,
                        open_leases=len(open_leases),
                    )
                )
        return totals

    def expire_leases(self, before_ms: int, now_ms: int) -> int:
        lapsed = sa.and_(
            leases.c.state == LeaseState.OPEN.value, leases.c.expires_at_ms < before_ms
        )
        with self._engine.begin() as connection:
            candidates = list(
                connection.execute(
                    sa.select(leases.c.lease_id, leases.c.budget, leases.c.period_key).where(lapsed)
                )
            )
            if not candidates:
                return 0
            lock_periods(connection, ((r.budget, r.period_key) for r in candidates), now_ms)
            # Re-checked under the locks: a grant may have refreshed one meanwhile.
            result = connection.execute(
                leases.update()
                .where(lapsed, leases.c.lease_id.in_(sorted(r.lease_id for r in candidates)))
                .values(state=LeaseState.EXPIRED.value, updated_at_ms=now_ms)
            )
            return result.rowcount
