"""The usage ledger part of the SQL store, mixed into `SqlStore`: exactly-once usage.

A batch is applied in one transaction: its key (sidecar_id, incarnation, seq) is
claimed with INSERT ... ON CONFLICT DO NOTHING (a repeat, from a reconnect or sent to
two replicas at once, claims nothing and changes nothing); the ledger rows go in
keyed on decision_id, again ON CONFLICT DO NOTHING, returning the ids actually
inserted; only those records' charges move money in the budget periods and leases
(`controlplane.sql_leases.charge_and_close`), then the batch's lease closes apply.

Ingestion speed (`make bench`): on PostgreSQL the rows go in as one array per column
through `unnest`, one short statement whose text never changes, so psycopg prepares
it once (a multi-row VALUES of 500 rows x 29 columns was re-parsed on every batch and
held ingestion to a quarter of the target); the arrays travel in binary, since
quoting each text element for the text format cost as much again. SQLite stays on executemany:
under the write lock its transaction holds from BEGIN IMMEDIATE, the ids already in
the ledger are read first and only new rows inserted, through sqlite3's own loop.

May import sqlalchemy; must not import grpc or `faregate.v1`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from controlplane.sql_leases import charge_and_close
from controlplane.sql_schema import dialect_insert, usage, usage_batches
from controlplane.store import BatchResult, SpendGroup, SpendRow, UsageBatch
from faregate.model import UsageRecord

_COLUMNS = tuple(column.name for column in usage.columns)
_ARRAY_TYPES = {
    column.name: "bigint" if isinstance(column.type, sa.BigInteger) else "text"
    for column in usage.columns
}
_PG_INSERT = (
    f"INSERT INTO usage ({', '.join(_COLUMNS)}) "
    f"SELECT * FROM unnest({', '.join(f'%({c})b::{_ARRAY_TYPES[c]}[]' for c in _COLUMNS)}) "
    "ON CONFLICT (decision_id) DO NOTHING RETURNING decision_id"
)
_SQLITE_EXISTING = "SELECT decision_id FROM usage WHERE decision_id IN ({})"
_SQLITE_INSERT = (
    f"INSERT INTO usage ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
)
_SQLITE_CHUNK = 500  # well under SQLite's bound on parameters per statement


def _budgets(record: UsageRecord) -> str:
    """Every budget the call counted against: those it names and those it charged."""
    names = list(record.budgets)
    names.extend(c.budget for c in record.charges if c.budget not in names)
    return json.dumps(names)


def _ledger_values(batch: UsageBatch, record: UsageRecord, now_ms: int) -> tuple[Any, ...]:
    """One ledger row, in the order of `_COLUMNS` (the table's)."""
    return (
        record.decision_id,
        batch.sidecar_id,
        batch.incarnation,
        batch.seq,
        record.service,
        record.capability,
        record.tenant,
        record.team,
        record.model,
        record.provider,
        str(record.action),
        record.input_tokens,
        record.cached_input_tokens,
        record.output_tokens,
        record.cost_nanos,
        record.estimated_cost_nanos,
        record.reserved_cost_nanos,
        record.price_version,
        record.config_version,
        str(record.outcome),
        record.latency_ms,
        record.business_value_nanos,
        record.outcome_label,
        json.dumps(dict(record.labels), sort_keys=True) if record.labels else "{}",
        _budgets(record) if record.budgets or record.charges else "[]",
        record.trace_id,
        record.decided_at_unix_ms,
        # A record without a report time is counted from when it reached the ledger.
        record.reported_at_unix_ms or now_ms,
        now_ms,
    )


def _insert_ledger(connection: sa.Connection, batch: UsageBatch, now_ms: int) -> set[str]:
    """Insert the batch's records; the decision ids that were not already there."""
    rows = [_ledger_values(batch, record, now_ms) for record in batch.records]
    if connection.dialect.name == "postgresql":
        columns = (list(values) for values in zip(*rows, strict=True))
        arrays = dict(zip(_COLUMNS, columns, strict=True))
        # psycopg's own cursor, in this transaction: `%(name)b` placeholders send the
        # arrays in binary, which skips quoting every text element.
        cursor = connection.connection.cursor()
        try:
            cursor.execute(_PG_INSERT, arrays)
            return {row[0] for row in cursor.fetchall()}
        finally:
            cursor.close()
    # SQLite: this transaction began IMMEDIATE, so it holds the database's write lock
    # and the ids found here cannot change before the insert; plain executemany in
    # sqlite3's C loop then beats any statement SQLAlchemy builds per row.
    cursor = connection.connection.cursor()
    try:
        ids = [row[0] for row in rows]
        existing: set[str] = set()
        for start in range(0, len(ids), _SQLITE_CHUNK):
            chunk = ids[start : start + _SQLITE_CHUNK]
            cursor.execute(_SQLITE_EXISTING.format(", ".join("?" * len(chunk))), chunk)
            existing.update(found for (found,) in cursor.fetchall())
        fresh: dict[str, tuple[Any, ...]] = {}
        for row in rows:
            if row[0] not in existing:
                fresh.setdefault(row[0], row)  # a decision twice in one batch: the first
        cursor.executemany(_SQLITE_INSERT, list(fresh.values()))
        return set(fresh)
    finally:
        cursor.close()


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class SqlLedger:
    """The `Store` methods for usage; `SqlStore` provides the engine."""

    _engine: sa.Engine

    def apply_usage_batch(self, batch: UsageBatch, now_ms: int) -> BatchResult:
        with self._engine.begin() as connection:
            claimed = connection.execute(
                dialect_insert(connection, usage_batches)
                .values(
                    sidecar_id=batch.sidecar_id,
                    incarnation=batch.incarnation,
                    seq=batch.seq,
                    records=len(batch.records),
                    applied_at_ms=now_ms,
                )
                .on_conflict_do_nothing()
                # RETURNING rather than rowcount: a row comes back only if inserted,
                # on every dialect and driver.
                .returning(usage_batches.c.seq)
            ).first()
            if claimed is None:
                return BatchResult(duplicate=True, applied=0)
            # A decision already in the ledger (e.g. re-journaled under a new
            # incarnation) is skipped, and so are its charges: counted once.
            inserted = _insert_ledger(connection, batch, now_ms) if batch.records else set()
            # One row per decision, so one charge too, even if a batch repeats a record.
            first = {r.decision_id: r for r in reversed(batch.records)}
            fresh = [r for r in first.values() if r.decision_id in inserted]
            charged = charge_and_close(connection, batch.sidecar_id, fresh, batch.closes, now_ms)
        return BatchResult(
            duplicate=False,
            applied=len(inserted),
            late_records=charged.late_records,
            late_nanos=charged.late_nanos,
            closed=charged.closed,
        )

    def spend(self, group_by: SpendGroup, since_ms: int | None) -> Sequence[SpendRow]:
        keys: list[sa.ColumnElement[Any]] = (
            [usage.c.tenant, usage.c.team]
            if group_by is SpendGroup.TEAM
            else [usage.c[str(group_by)]]
        )
        sums = [
            sa.func.coalesce(sa.func.sum(usage.c[name]), 0).label(name)
            for name in (
                "cost_nanos",
                "input_tokens",
                "cached_input_tokens",
                "output_tokens",
                "business_value_nanos",
            )
        ]
        query = sa.select(*keys, sa.func.count().label("requests"), *sums).group_by(*keys)
        if since_ms is not None:
            query = query.where(usage.c.reported_at_ms >= since_ms)
        with self._engine.connect() as connection:
            result = list(connection.execute(query))
        rows = [
            SpendRow(
                key=f"{row[0]}/{row[1]}" if group_by is SpendGroup.TEAM else str(row[0]),
                cost_nanos=int(row.cost_nanos),
                requests=int(row.requests),
                input_tokens=int(row.input_tokens),
                cached_input_tokens=int(row.cached_input_tokens),
                output_tokens=int(row.output_tokens),
                business_value_nanos=int(row.business_value_nanos),
            )
            for row in result
        ]
        return sorted(rows, key=lambda r: (-r.cost_nanos, r.key))

    def budget_burn(self, budgets: Sequence[str], since_ms: int) -> dict[str, int]:
        burn: dict[str, int] = {}
        with self._engine.connect() as connection:
            for name in budgets:
                # `budgets` holds a JSON list: the name's own JSON text, quotes
                # included, matches that element and no other.
                pattern = f"%{_like_escaped(json.dumps(name))}%"
                total = connection.execute(
                    sa.select(sa.func.coalesce(sa.func.sum(usage.c.cost_nanos), 0)).where(
                        usage.c.reported_at_ms >= since_ms,
                        usage.c.budgets.like(pattern, escape="\\"),
                    )
                ).scalar_one()
                burn[name] = int(total)
        return burn
