"""The `Store` on SQL: SQLite (embedded default) or PostgreSQL (shared by replicas).

SQLAlchemy Core over a synchronous engine; every public method is one transaction.
Exactly-once usage rests on the database, not on this process (`sql_ledger`); budget
conservation on row locks (`sql_leases`). Revision ids come from max(id) + 1 inside
the inserting transaction, which holds the database's write lock (SQLite) or an
advisory lock (PostgreSQL), so replicas applying at once get consecutive ids.

May import sqlalchemy; must not import grpc. Snapshots are stored through
`controlplane.convert`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from controlplane.convert import decode_snapshot, encode_snapshot
from controlplane.sql_approvals import SqlApprovals
from controlplane.sql_leases import SqlLeases
from controlplane.sql_ledger import SqlLedger
from controlplane.sql_schema import dialect_insert, revisions, sidecar_nacks, sidecars
from controlplane.store import AppendResult, RevisionInfo, SidecarHello, SidecarInfo
from faregate.model import Snapshot

# Any constant all replicas share ("fgrv"); distinct from the migration lock.
_APPEND_LOCK_KEY = 0x66677276
SQLITE_BUSY_TIMEOUT_MS = 30_000


def create_engine(url: str) -> sa.Engine:
    """An engine for `url`, tuned for the store (WAL and a busy timeout on SQLite)."""
    parsed = sa.make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(parsed, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(parsed)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN itself (pysqlite's own
        # implicit BEGIN is DEFERRED).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # IMMEDIATE takes the write lock up front: a read-then-write transaction
        # (next revision id, batch dedup) can then never fail half way with
        # SQLITE_BUSY when another process writes; it waits for the busy timeout.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def public_url(url: str) -> str:
    """`url` without its password, for logs."""
    # `URL.set` treats None as "leave as is"; the named tuple's `_replace` clears it.
    return sa.make_url(url)._replace(password=None).render_as_string(hide_password=False)


def _revision_info(row: Any) -> RevisionInfo:
    """From a row of `_INFO_COLUMNS`."""
    return RevisionInfo(
        revision=row.id,
        snapshot_version=row.snapshot_version,
        created_at_unix_ms=row.created_at_ms,
        author=row.author,
        source_name=row.source_name,
        models=row.models,
        capabilities=row.capabilities,
        tenants=row.tenants,
    )


_INFO_COLUMNS = (
    revisions.c.id,
    revisions.c.snapshot_version,
    revisions.c.created_at_ms,
    revisions.c.author,
    revisions.c.source_name,
    revisions.c.models,
    revisions.c.capabilities,
    revisions.c.tenants,
)


class SqlStore(SqlLedger, SqlLeases, SqlApprovals):
    """`controlplane.store.Store` on a SQLAlchemy engine (which it disposes on close).

    The usage ledger is in `controlplane.sql_ledger`, leases and budget totals in
    `controlplane.sql_leases`, approvals in `controlplane.sql_approvals`."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    @classmethod
    def open(cls, url: str) -> SqlStore:
        return cls(create_engine(url))

    @property
    def engine(self) -> sa.Engine:
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    # -- revisions ------------------------------------------------------------------

    def latest_revision(self) -> RevisionInfo | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                sa.select(*_INFO_COLUMNS).order_by(revisions.c.id.desc()).limit(1)
            ).first()
        return _revision_info(row) if row is not None else None

    def list_revisions(self, limit: int) -> Sequence[RevisionInfo]:
        query = sa.select(*_INFO_COLUMNS).order_by(revisions.c.id.desc()).limit(limit)
        with self._engine.connect() as connection:
            return [_revision_info(row) for row in connection.execute(query)]

    def get_snapshot(self, revision: int) -> Snapshot | None:
        query = sa.select(revisions.c.snapshot).where(revisions.c.id == revision)
        with self._engine.connect() as connection:
            data = connection.execute(query).scalar_one_or_none()
        return decode_snapshot(data) if data is not None else None

    def append_revision(
        self,
        snapshot: Snapshot,
        *,
        yaml_text: str,
        source_name: str,
        author: str,
        created_at_unix_ms: int,
    ) -> AppendResult:
        with self._engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Appends from all replicas take turns: the next id is read and
                # written under this lock (SQLite's BEGIN IMMEDIATE does the same).
                connection.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _APPEND_LOCK_KEY}
                )
            return self._append_locked(
                connection, snapshot, yaml_text, source_name, author, created_at_unix_ms
            )

    def _append_locked(
        self,
        connection: sa.Connection,
        snapshot: Snapshot,
        yaml_text: str,
        source_name: str,
        author: str,
        created_at: int,
    ) -> AppendResult:
        latest = connection.execute(
            sa.select(*_INFO_COLUMNS).order_by(revisions.c.id.desc()).limit(1)
        ).first()
        if latest is not None and latest.snapshot_version == snapshot.version:
            return AppendResult(_revision_info(latest), created=False)
        next_id = latest.id + 1 if latest is not None else 1
        stored = dataclasses.replace(snapshot, revision=next_id, created_at_unix_ms=created_at)
        info = RevisionInfo(
            revision=next_id,
            snapshot_version=stored.version,
            created_at_unix_ms=created_at,
            author=author,
            source_name=source_name,
            models=len(stored.models),
            capabilities=len(stored.capabilities),
            tenants=len(stored.tenants),
        )
        connection.execute(
            revisions.insert().values(
                id=next_id,
                created_at_ms=created_at,
                author=author,
                source_name=source_name,
                yaml=yaml_text,
                snapshot=encode_snapshot(stored),
                snapshot_version=stored.version,
                models=info.models,
                capabilities=info.capabilities,
                tenants=info.tenants,
            )
        )
        return AppendResult(info, created=True)

    # -- sidecars -------------------------------------------------------------------

    def sidecar_connected(self, hello: SidecarHello, now_ms: int) -> None:
        values = {
            "service": hello.service,
            "connected": True,
            "snapshot_version": hello.snapshot_version,
            "last_seen_ms": now_ms,
            "incarnation": hello.incarnation,
            "hostname": hello.hostname,
            "controlplane_id": hello.controlplane_id,
        }
        with self._engine.begin() as connection:
            statement = dialect_insert(connection, sidecars).values(
                sidecar_id=hello.sidecar_id, last_nack_version="", last_nack_reason="", **values
            )
            connection.execute(
                statement.on_conflict_do_update(index_elements=[sidecars.c.sidecar_id], set_=values)
            )

    def _update_sidecar(self, sidecar_id: str, **values: Any) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                sidecars.update().where(sidecars.c.sidecar_id == sidecar_id).values(**values)
            )

    def sidecar_seen(self, sidecar_id: str, snapshot_version: str, now_ms: int) -> None:
        if snapshot_version:
            self._update_sidecar(sidecar_id, last_seen_ms=now_ms, snapshot_version=snapshot_version)
        else:
            self._update_sidecar(sidecar_id, last_seen_ms=now_ms)

    def sidecar_acked(self, sidecar_id: str, version: str, now_ms: int) -> None:
        self._update_sidecar(sidecar_id, snapshot_version=version, last_seen_ms=now_ms)

    def sidecar_nacked(self, sidecar_id: str, version: str, reason: str, now_ms: int) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                sidecars.update()
                .where(sidecars.c.sidecar_id == sidecar_id)
                .values(last_nack_version=version, last_nack_reason=reason, last_seen_ms=now_ms)
            )
            connection.execute(
                dialect_insert(connection, sidecar_nacks)
                .values(sidecar_id=sidecar_id, version=version, reason=reason, nacked_at_ms=now_ms)
                .on_conflict_do_nothing()
            )

    def nacked_versions(self, sidecar_id: str) -> frozenset[str]:
        query = sa.select(sidecar_nacks.c.version).where(sidecar_nacks.c.sidecar_id == sidecar_id)
        with self._engine.connect() as connection:
            return frozenset(connection.execute(query).scalars())

    def sidecar_disconnected(self, sidecar_id: str, controlplane_id: str, now_ms: int) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                sidecars.update()
                .where(
                    sidecars.c.sidecar_id == sidecar_id,
                    sidecars.c.controlplane_id == controlplane_id,
                )
                .values(connected=False, last_seen_ms=now_ms)
            )

    def disconnect_all(self, controlplane_id: str, now_ms: int) -> int:
        with self._engine.begin() as connection:
            result = connection.execute(
                sidecars.update()
                .where(sidecars.c.controlplane_id == controlplane_id, sidecars.c.connected)
                .values(connected=False, last_seen_ms=now_ms)
            )
            return result.rowcount

    def list_sidecars(self) -> Sequence[SidecarInfo]:
        query = sa.select(sidecars).order_by(sidecars.c.service, sidecars.c.sidecar_id)
        with self._engine.connect() as connection:
            return [
                SidecarInfo(
                    sidecar_id=row.sidecar_id,
                    service=row.service,
                    connected=row.connected,
                    snapshot_version=row.snapshot_version,
                    last_nack_version=row.last_nack_version,
                    last_nack_reason=row.last_nack_reason,
                    last_seen_unix_ms=row.last_seen_ms,
                    incarnation=row.incarnation,
                    hostname=row.hostname,
                    controlplane_id=row.controlplane_id,
                )
                for row in connection.execute(query)
            ]
