"""`db.engine` on SQLite: connections opening a new database file at once all get it in WAL mode."""

from __future__ import annotations

import asyncio
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from partners.db.engine import create_engine

ENGINES = 8
FILES = 20


async def _journal_mode(engine: AsyncEngine) -> str:
    async with engine.connect() as conn:
        return str((await conn.execute(sa.text("PRAGMA journal_mode"))).scalar_one())


async def test_connections_opening_a_new_database_at_once_all_switch_it_to_wal(tmp_path: Path) -> None:
    for number in range(FILES):
        url = f"sqlite:///{tmp_path / f'fresh-{number}.db'}"
        engines = [create_engine(url) for _ in range(ENGINES)]
        try:
            modes = await asyncio.gather(*(_journal_mode(engine) for engine in engines))
        finally:
            for engine in engines:
                await engine.dispose()
        assert modes == ["wal"] * ENGINES
