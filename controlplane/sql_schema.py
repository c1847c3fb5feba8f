"""The control plane's SQL tables, as SQLAlchemy Core metadata.

The schema is created and changed only by the Alembic migrations in
`controlplane/migrations/`; this metadata mirrors their result for queries (and for
`alembic revision --autogenerate`). Money columns are 64-bit integers of nano-USD.
Times are Unix milliseconds, written by the caller's clock, never by the database.

May import sqlalchemy; must not import grpc or `faregate.v1`. Besides the tables,
only `dialect_insert`, which every SQL module writes with.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

metadata = sa.MetaData()


def dialect_insert(connection: sa.Connection, table: sa.Table) -> Any:
    """The dialect's INSERT, which has ON CONFLICT support (both dialects spell it alike)."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


revisions = sa.Table(
    "revisions",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    sa.Column("author", sa.String, nullable=False),
    sa.Column("source_name", sa.String, nullable=False),
    sa.Column("yaml", sa.Text, nullable=False),
    sa.Column("snapshot", sa.LargeBinary, nullable=False),  # a serialized faregate.v1.Snapshot
    sa.Column("snapshot_version", sa.String, nullable=False),
    sa.Column("models", sa.Integer, nullable=False),
    sa.Column("capabilities", sa.Integer, nullable=False),
    sa.Column("tenants", sa.Integer, nullable=False),
)

sidecars = sa.Table(
    "sidecars",
    metadata,
    sa.Column("sidecar_id", sa.String, primary_key=True),
    sa.Column("service", sa.String, nullable=False),
    sa.Column("connected", sa.Boolean, nullable=False),
    sa.Column("snapshot_version", sa.String, nullable=False),
    sa.Column("last_nack_version", sa.String, nullable=False),
    sa.Column("last_nack_reason", sa.Text, nullable=False),
    sa.Column("last_seen_ms", sa.BigInteger, nullable=False),
    sa.Column("incarnation", sa.String, nullable=False),
    sa.Column("hostname", sa.String, nullable=False),
    sa.Column("controlplane_id", sa.String, nullable=False),
)

sidecar_nacks = sa.Table(
    "sidecar_nacks",
    metadata,
    sa.Column("sidecar_id", sa.String, primary_key=True),
    sa.Column("version", sa.String, primary_key=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("nacked_at_ms", sa.BigInteger, nullable=False),
)

usage_batches = sa.Table(
    "usage_batches",
    metadata,
    sa.Column("sidecar_id", sa.String, primary_key=True),
    sa.Column("incarnation", sa.String, primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("records", sa.Integer, nullable=False),
    sa.Column("applied_at_ms", sa.BigInteger, nullable=False),
)

usage = sa.Table(
    "usage",
    metadata,
    sa.Column("decision_id", sa.String, primary_key=True),
    sa.Column("sidecar_id", sa.String, nullable=False),
    sa.Column("incarnation", sa.String, nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("service", sa.String, nullable=False),
    sa.Column("capability", sa.String, nullable=False),
    sa.Column("tenant", sa.String, nullable=False),
    sa.Column("team", sa.String, nullable=False),
    sa.Column("model", sa.String, nullable=False),
    sa.Column("provider", sa.String, nullable=False),
    sa.Column("action", sa.String, nullable=False),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("cached_input_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("cost_nanos", sa.BigInteger, nullable=False),
    sa.Column("estimated_cost_nanos", sa.BigInteger, nullable=False),
    sa.Column("reserved_cost_nanos", sa.BigInteger, nullable=False),
    sa.Column("price_version", sa.String, nullable=False),
    sa.Column("config_version", sa.String, nullable=False),
    sa.Column("outcome", sa.String, nullable=False),
    sa.Column("latency_ms", sa.BigInteger, nullable=False),
    sa.Column("business_value_nanos", sa.BigInteger, nullable=False),
    sa.Column("outcome_label", sa.String, nullable=False),
    sa.Column("labels", sa.Text, nullable=False),  # JSON object
    sa.Column("budgets", sa.Text, nullable=False),  # JSON list
    sa.Column("trace_id", sa.String, nullable=False),
    sa.Column("decided_at_ms", sa.BigInteger, nullable=False),
    sa.Column("reported_at_ms", sa.BigInteger, nullable=False, index=True),
    sa.Column("applied_at_ms", sa.BigInteger, nullable=False),
)

# Created by 0001; 0002 added `service`, `updated_at_ms` and the indexes replicas and
# `faregate approvals list` query by. `labels` is a JSON object; `uses` is unused (a
# sidecar counts the uses of a grant itself).
approvals = sa.Table(
    "approvals",
    metadata,
    sa.Column("approval_id", sa.String, primary_key=True),
    sa.Column("sidecar_id", sa.String, nullable=False, index=True),
    sa.Column("decision_id", sa.String, nullable=False),
    sa.Column("idempotency_key", sa.String, nullable=False),
    sa.Column("capability", sa.String, nullable=False),
    sa.Column("tenant", sa.String, nullable=False),
    sa.Column("team", sa.String, nullable=False),
    sa.Column("model", sa.String, nullable=False),
    sa.Column("risk", sa.String, nullable=False),
    sa.Column("estimated_cost_nanos", sa.BigInteger, nullable=False),
    sa.Column("labels", sa.Text, nullable=False),
    sa.Column("state", sa.String, nullable=False, index=True),
    sa.Column("requested_at_ms", sa.BigInteger, nullable=False),
    sa.Column("decided_at_ms", sa.BigInteger, nullable=True),
    sa.Column("decided_by", sa.String, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("expires_at_ms", sa.BigInteger, nullable=True),
    sa.Column("max_uses", sa.BigInteger, nullable=False),
    sa.Column("uses", sa.BigInteger, nullable=False),
    sa.Column("service", sa.String, nullable=False, server_default=""),
    sa.Column("updated_at_ms", sa.BigInteger, nullable=False, server_default="0", index=True),
)

# One row per budget and period (0003): the row every grant, usage batch, close and
# expiry of that budget period locks first. `committed_nanos` is C (usage applied plus
# forfeited remainders); `limit_nanos` is the limit the latest grant was made under.
budget_periods = sa.Table(
    "budget_periods",
    metadata,
    sa.Column("budget", sa.String, primary_key=True),
    sa.Column("period_key", sa.String, primary_key=True),
    sa.Column("limit_nanos", sa.BigInteger, nullable=False),
    sa.Column("committed_nanos", sa.BigInteger, nullable=False),
    sa.Column("forfeited_nanos", sa.BigInteger, nullable=False),
    sa.Column("late_nanos", sa.BigInteger, nullable=False),
    sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
)

# One lease per (sidecar, incarnation, budget, period), topped up in place (0003).
# Outstanding O of a budget period is the sum of max(0, granted - applied) over its
# open leases.
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("lease_id", sa.String, primary_key=True),
    sa.Column("budget", sa.String, nullable=False),
    sa.Column("period_key", sa.String, nullable=False),
    sa.Column("sidecar_id", sa.String, nullable=False),
    sa.Column("service", sa.String, nullable=False),
    sa.Column("incarnation", sa.String, nullable=False),
    sa.Column("granted_nanos", sa.BigInteger, nullable=False),
    sa.Column("applied_nanos", sa.BigInteger, nullable=False),
    sa.Column("demand_nanos_per_s", sa.BigInteger, nullable=False),
    sa.Column("expires_at_ms", sa.BigInteger, nullable=False),
    sa.Column("ttl_ms", sa.BigInteger, nullable=False),
    sa.Column("state", sa.String, nullable=False),
    sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
    sa.UniqueConstraint(
        "sidecar_id", "incarnation", "budget", "period_key", name="uq_leases_holder"
    ),
    sa.Index("ix_leases_budget_period_state", "budget", "period_key", "state"),
    sa.Index("ix_leases_state_expires_at_ms", "state", "expires_at_ms"),
)
