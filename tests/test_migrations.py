"""Alembic migrations run on both engines: upgrade, downgrade to base, upgrade again; and match the models."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import make_url

from partners.db import migrate
from partners.db.base import Base
from tests.conftest import IN_CI, PG_URL, prepare_postgres


def _sync_url(url: str) -> sa.URL:
    parsed = make_url(url)
    driver = "postgresql+psycopg" if parsed.drivername.startswith("postgresql") else "sqlite"
    return parsed.set(drivername=driver)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}"
        return
    url = _sync_url(PG_URL)
    name = f"{url.database}_migrations"
    error = prepare_postgres()
    if error:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required under CI=true: {error}")
        pytest.skip(f"PostgreSQL unavailable: {error}")
    try:
        admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as error:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required under CI=true: {error}")
        pytest.skip(f"PostgreSQL unavailable: {error}")
    yield url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _table_names(url: str) -> set[str]:
    engine = sa.create_engine(_sync_url(url))
    try:
        return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _differences_from_models(url: str) -> list[object]:
    engine = sa.create_engine(_sync_url(url))
    try:
        with engine.connect() as conn:
            return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))
    finally:
        engine.dispose()


async def test_upgrade_downgrade_upgrade(empty_database_url: str) -> None:
    model_tables = set(Base.metadata.tables)
    await asyncio.to_thread(migrate.upgrade, empty_database_url)
    assert _table_names(empty_database_url) == model_tables
    assert _differences_from_models(empty_database_url) == []

    await asyncio.to_thread(migrate.downgrade, empty_database_url)
    assert _table_names(empty_database_url) == set()

    await asyncio.to_thread(migrate.upgrade, empty_database_url)
    assert _table_names(empty_database_url) == model_tables
