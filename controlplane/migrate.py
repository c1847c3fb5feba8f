"""Schema migrations, run in code: `faregate-controlplane migrate` and every `serve`.

Builds the Alembic configuration programmatically (script location inside this
package, no alembic.ini) and runs it on a connection of the store's own engine.
On PostgreSQL an advisory lock makes replicas starting together migrate one at a
time instead of racing to create the same tables.

May import sqlalchemy and alembic; must not import grpc or `faregate.v1`.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Any constant shared by all replicas: "fgcp" as an integer.
_ADVISORY_LOCK_KEY = 0x66676370


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade(engine: sa.Engine, target: str = "head") -> None:
    """Bring the database to `target` (default: the newest revision)."""
    config = alembic_config()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY}
            )
        config.attributes["connection"] = connection
        command.upgrade(config, target)


def current_revision(engine: sa.Engine) -> str | None:
    """The schema revision the database is at (None: never migrated)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
