"""FastAPI dependencies shared by every router: the unit of work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from partners.db.session import Database
from partners.settings import Settings

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def database_of(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


# The dependencies are `async def` although they do not await: FastAPI runs a plain `def` dependency in its
# thread pool, a thread hop per request that cost the event loop more than the request's own work under load
# (benchmark 2, bench/README.md).
async def get_database(request: Request) -> Database:
    return database_of(request)


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def unit_of_work(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request; committed before the response is sent (scope="function")."""
    database = database_of(request)
    if request.method in READ_METHODS:
        async with database.read() as session:
            yield session
        return
    async with database.write() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(unit_of_work, scope="function")]
DatabaseDep = Annotated[Database, Depends(get_database)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
