"""Alembic migrations of the control plane's store (run by `controlplane.migrate`)."""
