"""Alembic environment: runs migrations on the connection `controlplane.migrate` hands in.

There is no alembic.ini: `controlplane.migrate` builds the Alembic config in code and
passes an open connection in `config.attributes["connection"]`, so URLs with special
characters never go through ConfigParser interpolation. Without one (the `alembic`
command line), the URL comes from the `sqlalchemy.url` option.

May import sqlalchemy and alembic; must not import grpc or `faregate.v1`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from controlplane.sql_schema import metadata


def _run(connection: sa.Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = context.config.attributes.get("connection")
    if isinstance(connection, sa.Connection):
        _run(connection)
        return
    engine = sa.create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.connect() as fresh:
            _run(fresh)
            fresh.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    run_online()
