"""Approvals: the requesting service, a change time for replicas' polls, indexes.

Revision ID: 0002
Revises: 0001
Create Date: 2025-06-15

0001 created the `approvals` table ahead of its issue; this adds what the approval
flow needs: `service` (shown to operators), `updated_at_ms` (every replica polls for
approvals changed since its last look, to push decisions to its sidecars) and
indexes for those polls, for `approvals list` (by state) and for a reconnecting
sidecar's own approvals. Frozen once released.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Server defaults let the columns be added NOT NULL to a table that has rows.
    op.add_column("approvals", sa.Column("service", sa.String, nullable=False, server_default=""))
    op.add_column(
        "approvals",
        sa.Column("updated_at_ms", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_index("ix_approvals_updated_at_ms", "approvals", ["updated_at_ms"])
    op.create_index("ix_approvals_state", "approvals", ["state"])
    op.create_index("ix_approvals_sidecar_id", "approvals", ["sidecar_id"])


def downgrade() -> None:
    for index in ("ix_approvals_sidecar_id", "ix_approvals_state", "ix_approvals_updated_at_ms"):
        op.drop_index(index, table_name="approvals")
    with op.batch_alter_table("approvals") as batch:
        batch.drop_column("updated_at_ms")
        batch.drop_column("service")
