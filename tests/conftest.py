"""Test fixtures: every test that asks for `database` runs on SQLite and on PostgreSQL.

PostgreSQL: `PARTNERS_TEST_DATABASE_URL` (default postgresql://postgres@127.0.0.1:5432/partners_test), created
if missing. Without a reachable server the PostgreSQL half is skipped with a loud notice, except under
CI=true, where it fails.
"""

from __future__ import annotations

import os

# Cheaper Argon2id for the suite (set before partners.identity.passwords is imported).
os.environ.setdefault("PARTNERS_ARGON2_TIME_COST", "1")
os.environ.setdefault("PARTNERS_ARGON2_MEMORY_KIB", "1024")
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from partners.app import create_app
from partners.db.base import Base
from partners.db.engine import create_engine
from partners.db.registry import load_all_models
from partners.db.session import Database
from partners.settings import Settings, get_settings

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/partners_test"
PG_URL = os.environ.get("PARTNERS_TEST_DATABASE_URL", DEFAULT_PG_URL)
IN_CI = os.environ.get("CI", "").lower() == "true"

load_all_models()

_pg_state: dict[str, Any] = {"checked": False, "error": None, "lock": None}
# Held for the whole pytest session: two test runs on one test database take turns instead of
# truncating each other's tables (runs on different databases don't wait for each other).
TEST_RUN_LOCK_ID = zlib.crc32((make_url(PG_URL).database or "").encode())


def _sync_pg_url(url: str) -> sa.URL:
    return make_url(url).set(drivername="postgresql+psycopg")


def _prepare_postgres() -> str | None:
    """Create the test database if missing and lay the schema once. Returns an error text or None."""
    if _pg_state["checked"]:
        return _pg_state["error"]  # type: ignore[no-any-return]
    _pg_state["checked"] = True
    url = _sync_pg_url(PG_URL)
    try:
        admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool)
        lock = admin.connect()
        lock.execute(sa.text("SELECT pg_advisory_lock(:id)"), {"id": TEST_RUN_LOCK_ID})
        _pg_state["lock"] = lock
        exists = lock.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": url.database})
        if exists.scalar() is None:
            lock.execute(sa.text(f'CREATE DATABASE "{url.database}"'))
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
            Base.metadata.create_all(conn)
        engine.dispose()
    except Exception as error:
        _pg_state["error"] = f"{type(error).__name__}: {error}"
    return _pg_state["error"]  # type: ignore[no-any-return]


def _truncate_postgres() -> None:
    engine = sa.create_engine(_sync_pg_url(PG_URL))
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    if not tables:
        return
    with engine.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


def prepare_postgres() -> str | None:
    """For tests that need PostgreSQL beyond the `database` fixture: the error text, or None when ready."""
    return _prepare_postgres()


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    if _pg_state["lock"] is not None:
        _pg_state["lock"].close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _pg_state["error"] and not IN_CI:
        terminalreporter.write_sep("!", "POSTGRESQL TESTS SKIPPED", red=True, bold=True)
        terminalreporter.write_line(f"PostgreSQL at {PG_URL} is not reachable: {_pg_state['error']}")
        terminalreporter.write_line("Only the SQLite half ran. Start PostgreSQL or set PARTNERS_TEST_DATABASE_URL.")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path / "partners.db"
        engine = sa.create_engine(f"sqlite:///{path}")
        Base.metadata.create_all(engine)
        engine.dispose()
        yield f"sqlite+aiosqlite:///{path}"
        return
    error = _prepare_postgres()
    if error:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required under CI=true: {error}")
        pytest.skip(f"PostgreSQL unavailable: {error}")
    _truncate_postgres()
    yield PG_URL


@pytest.fixture
def cli_database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The CLI reads DATABASE_URL through get_settings(); point it at the test database."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()
    yield database_url
    get_settings.cache_clear()


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(create_engine(database_url))
    yield db
    await db.dispose()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        PARTNERS_ENV="test",
        DATABASE_URL=database_url,
        SECRET_KEY="test-secret-key-0123456789abcdef",
        PARTNERS_EMBEDDED_WORKER=False,
        PARTNERS_EMAIL_BACKEND="file",
        PARTNERS_EMAIL_DIR=str(tmp_path / "mail"),
        PARTNERS_CLICK_JOURNAL_DIR=str(tmp_path / "clicks"),
    )


@pytest.fixture
async def app(settings: Settings, database: Database) -> Any:
    return create_app(settings, database)


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
