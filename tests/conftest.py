"""Fixtures shared by every test: databases for the control plane's store.

`database_url` is parametrised over the embedded SQLite default and PostgreSQL.
PostgreSQL comes from FAREGATE_TEST_POSTGRES_URL; each test gets a database of its
own, created and dropped here. Without the variable the PostgreSQL cases skip with
the reason, except under CI (CI=true), where a missing server fails the run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

POSTGRES_ENV = "FAREGATE_TEST_POSTGRES_URL"


def _postgres_admin_url() -> str:
    url = os.environ.get(POSTGRES_ENV, "")
    if url:
        return url
    reason = f"{POSTGRES_ENV} is not set: PostgreSQL tests need a server"
    if os.environ.get("CI") == "true":
        pytest.fail(reason + " (CI=true: PostgreSQL is required)")
    pytest.skip(reason)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    admin_url = sa.make_url(_postgres_admin_url())
    if admin_url.drivername == "postgresql":
        admin_url = admin_url.set(drivername="postgresql+psycopg")
    name = f"fg_test_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        engine.dispose()
        message = f"PostgreSQL at {admin_url.render_as_string(hide_password=True)} unreachable"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}: {exc}")
        pytest.skip(message)
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The control plane's store, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'faregate.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url
