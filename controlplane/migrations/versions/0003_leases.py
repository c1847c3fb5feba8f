"""Budget leases: one row per budget period (its totals and lock) and the leases.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04

`budget_periods` holds each budget period's committed, forfeited and late totals and
is the row every change to that budget period locks; `leases` holds one lease per
(sidecar, incarnation, budget, period key). See docs/budgets.md. Frozen once released.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _text(name: str) -> sa.Column[str]:
    return sa.Column(name, sa.String, nullable=False)


def _int(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger, nullable=False)


def upgrade() -> None:
    op.create_table(
        "budget_periods",
        sa.Column("budget", sa.String, primary_key=True),
        sa.Column("period_key", sa.String, primary_key=True),
        _int("limit_nanos"),
        _int("committed_nanos"),
        _int("forfeited_nanos"),
        _int("late_nanos"),
        _int("updated_at_ms"),
    )
    op.create_table(
        "leases",
        sa.Column("lease_id", sa.String, primary_key=True),
        _text("budget"),
        _text("period_key"),
        _text("sidecar_id"),
        _text("service"),
        _text("incarnation"),
        _int("granted_nanos"),
        _int("applied_nanos"),
        _int("demand_nanos_per_s"),
        _int("expires_at_ms"),
        _int("ttl_ms"),
        _text("state"),
        _int("created_at_ms"),
        _int("updated_at_ms"),
        sa.UniqueConstraint(
            "sidecar_id", "incarnation", "budget", "period_key", name="uq_leases_holder"
        ),
    )
    op.create_index("ix_leases_budget_period_state", "leases", ["budget", "period_key", "state"])
    op.create_index("ix_leases_state_expires_at_ms", "leases", ["state", "expires_at_ms"])


def downgrade() -> None:
    op.drop_index("ix_leases_state_expires_at_ms", table_name="leases")
    op.drop_index("ix_leases_budget_period_state", table_name="leases")
    op.drop_table("leases")
    op.drop_table("budget_periods")
