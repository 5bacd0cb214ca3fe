"""Units of work. A request or a job opens one; services never commit, the caller does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from partners.db.engine import WRITE_OPTION


class Database:
    """An engine plus two session factories: writes (`BEGIN IMMEDIATE` on SQLite) and reads."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._write_engine = engine.execution_options(**{WRITE_OPTION: True})
        self.write_sessions = async_sessionmaker(self._write_engine, expire_on_commit=False)
        self.read_sessions = async_sessionmaker(engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A write unit of work: commits on success, rolls back on error."""
        async with self.write_sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self.read_sessions() as session:
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
