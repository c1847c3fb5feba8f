"""Initial schema: revisions, sidecars, NACKs, usage batches, the usage ledger, approvals.

Revision ID: 0001
Revises:
Create Date: 2025-06-01

Written by hand and frozen: later changes go in new revisions, never here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _text(name: str) -> sa.Column[str]:
    return sa.Column(name, sa.String, nullable=False)


def _int(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger, nullable=False)


def upgrade() -> None:
    op.create_table(
        "revisions",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        _int("created_at_ms"),
        _text("author"),
        _text("source_name"),
        sa.Column("yaml", sa.Text, nullable=False),
        sa.Column("snapshot", sa.LargeBinary, nullable=False),
        _text("snapshot_version"),
        sa.Column("models", sa.Integer, nullable=False),
        sa.Column("capabilities", sa.Integer, nullable=False),
        sa.Column("tenants", sa.Integer, nullable=False),
    )
    op.create_table(
        "sidecars",
        sa.Column("sidecar_id", sa.String, primary_key=True),
        _text("service"),
        sa.Column("connected", sa.Boolean, nullable=False),
        _text("snapshot_version"),
        _text("last_nack_version"),
        sa.Column("last_nack_reason", sa.Text, nullable=False),
        _int("last_seen_ms"),
        _text("incarnation"),
        _text("hostname"),
        _text("controlplane_id"),
    )
    op.create_table(
        "sidecar_nacks",
        sa.Column("sidecar_id", sa.String, primary_key=True),
        sa.Column("version", sa.String, primary_key=True),
        sa.Column("reason", sa.Text, nullable=False),
        _int("nacked_at_ms"),
    )
    op.create_table(
        "usage_batches",
        sa.Column("sidecar_id", sa.String, primary_key=True),
        sa.Column("incarnation", sa.String, primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("records", sa.Integer, nullable=False),
        _int("applied_at_ms"),
    )
    op.create_table(
        "usage",
        sa.Column("decision_id", sa.String, primary_key=True),
        _text("sidecar_id"),
        _text("incarnation"),
        _int("seq"),
        _text("service"),
        _text("capability"),
        _text("tenant"),
        _text("team"),
        _text("model"),
        _text("provider"),
        _text("action"),
        _int("input_tokens"),
        _int("cached_input_tokens"),
        _int("output_tokens"),
        _int("cost_nanos"),
        _int("estimated_cost_nanos"),
        _int("reserved_cost_nanos"),
        _text("price_version"),
        _text("config_version"),
        _text("outcome"),
        _int("latency_ms"),
        _int("business_value_nanos"),
        _text("outcome_label"),
        sa.Column("labels", sa.Text, nullable=False),
        sa.Column("budgets", sa.Text, nullable=False),
        _text("trace_id"),
        _int("decided_at_ms"),
        _int("reported_at_ms"),
        _int("applied_at_ms"),
    )
    op.create_index("ix_usage_reported_at_ms", "usage", ["reported_at_ms"])
    op.create_table(
        "approvals",
        sa.Column("approval_id", sa.String, primary_key=True),
        _text("sidecar_id"),
        _text("decision_id"),
        _text("idempotency_key"),
        _text("capability"),
        _text("tenant"),
        _text("team"),
        _text("model"),
        _text("risk"),
        _int("estimated_cost_nanos"),
        sa.Column("labels", sa.Text, nullable=False),
        _text("state"),
        _int("requested_at_ms"),
        sa.Column("decided_at_ms", sa.BigInteger, nullable=True),
        _text("decided_by"),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger, nullable=True),
        _int("max_uses"),
        _int("uses"),
    )


def downgrade() -> None:
    for table in ("approvals", "usage", "usage_batches", "sidecar_nacks", "sidecars", "revisions"):
        op.drop_table(table)
