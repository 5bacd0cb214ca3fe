"""Units of work. A request or a job opens one; services never commit, the caller does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from partners.db.engine import WRITE_OPTION, sibling_engine
from partners.db.registry import load_all_models

# PostgreSQL connections per process: 10 + 20 for reads (engine.py) and these for writes.
WRITE_POOL: dict[str, Any] = {"pool_size": 5, "max_overflow": 10}


def dialect_name(session: Session | AsyncSession) -> str:
    """The engine a unit of work runs on: "postgresql" or "sqlite"."""
    return session.get_bind().dialect.name


def dialect_insert(session: Session | AsyncSession, table: Any) -> Any:
    """`INSERT` into `table` in the unit of work's dialect, which knows `ON CONFLICT` (`on_conflict_do_nothing`,
    `on_conflict_do_update`)."""
    dialect = postgresql if dialect_name(session) == "postgresql" else sqlite
    return dialect.insert(table)


class Database:
    """Two engines and their session factories: writes (`BEGIN IMMEDIATE` on SQLite) and reads (on PostgreSQL
    outside transaction blocks, read-only: `db.engine.READ_ONLY`).

    Writes have a connection pool of their own: with one shared pool, a write waited for a connection behind
    every read queued before it, and under a read-heavy load purchase events starved (benchmark 4,
    bench/README.md). On PostgreSQL they reuse their statements' plans (`db.engine.GENERIC_PLANS`)."""

    def __init__(self, engine: AsyncEngine) -> None:
        load_all_models()  # every table, and the listeners keeping the rollups in step
        self.engine = engine
        pool = {} if engine.dialect.name == "sqlite" else WRITE_POOL
        self._write_engine = sibling_engine(engine, generic_plans=True, **pool).execution_options(
            **{WRITE_OPTION: True}
        )
        self._read_engine = engine if engine.dialect.name == "sqlite" else sibling_engine(engine, read_only=True)
        self.write_sessions = async_sessionmaker(self._write_engine, expire_on_commit=False)
        self.read_sessions = async_sessionmaker(self._read_engine, expire_on_commit=False)
        # SQLite has one writer at a time. This process's write units of work take turns here, in order, instead
        # of each polling the file lock: sqlite3's busy handler sleeps up to 100 ms between tries, so waiters
        # came in at random after long idle gaps (bench/: seconds of p99 at 8 concurrent purchase events).
        self._write_turn = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A write unit of work: commits on success, rolls back on error."""
        if self._write_turn is None:
            async with self.write_sessions() as session, session.begin():
                yield session
            return
        async with self._write_turn, self.write_sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self.read_sessions() as session:
            yield session

    async def dispose(self) -> None:
        await self._write_engine.dispose()
        if self._read_engine is not self.engine:
            await self._read_engine.dispose()
        await self.engine.dispose()
