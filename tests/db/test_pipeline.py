"""`db.pipeline`: a write queued with `run_later` is seen by whatever the unit of work runs next and is durable at
commit, on both engines; on PostgreSQL it waits in the queue until then (its error comes from the next statement
or the commit, with which it travels), and a rollback, of the transaction or of a savepoint, drops what it
queued."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from partners.db import bulk, pipeline
from partners.db.engine import create_engine, normalise_database_url
from partners.db.session import Database
from partners.ledger.models import LedgerAccount
from tests.factories import ledger_account_row

_accounts = cast(sa.Table, LedgerAccount.__table__)
AT = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _account(owner: str) -> dict[str, Any]:
    return ledger_account_row(owner, created_at=AT)


async def _insert_later(session: AsyncSession, dialect: str, *owners: str) -> None:
    write = bulk.insert(dialect, _accounts, [_account(owner) for owner in owners])
    await pipeline.run_later(session, write.statement, write.parameters)


async def _owners(database: Database) -> list[str]:
    async with database.read() as session:
        return sorted((await session.scalars(sa.select(_accounts.c.owner))).all())


async def test_the_next_statement_sees_a_queued_write_and_the_commit_keeps_it(database: Database) -> None:
    async with database.write() as session:
        await _insert_later(session, database.dialect, "partner:1", "partner:2")
        await _insert_later(session, database.dialect, "partner:3")
        seen = (await session.scalars(sa.select(_accounts.c.owner).order_by(_accounts.c.owner))).all()
        assert seen == ["partner:1", "partner:2", "partner:3"]
        await _insert_later(session, database.dialect, "partner:4")  # sent at commit
    assert await _owners(database) == ["partner:1", "partner:2", "partner:3", "partner:4"]


async def test_a_failing_queued_write_fails_the_unit_of_work_and_nothing_is_kept(database: Database) -> None:
    async with database.write() as session:
        await _insert_later(session, database.dialect, "partner:1")
    with pytest.raises(IntegrityError):
        async with database.write() as session:
            await _insert_later(session, database.dialect, "partner:2")
            await _insert_later(session, database.dialect, "partner:1")  # the unique (owner, kind, currency)
            await session.execute(sa.select(1))  # PostgreSQL: the queue goes, and fails, here
    assert await _owners(database) == ["partner:1"]


async def test_on_postgresql_a_queued_write_fails_at_commit_when_nothing_runs_after_it(database: Database) -> None:
    if database.dialect != "postgresql":
        pytest.skip("SQLite runs the write at once")
    async with database.write() as session:
        await _insert_later(session, database.dialect, "partner:1")
    queued = False
    with pytest.raises(IntegrityError):
        async with database.write() as session:
            await _insert_later(session, database.dialect, "partner:1", "partner:2")
            queued = True  # run_later did not raise: the write waits in the queue
    assert queued
    assert await _owners(database) == ["partner:1"]


async def test_on_postgresql_the_queue_and_the_commit_go_in_one_round_trip(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    if database.dialect != "postgresql":
        pytest.skip("SQLite runs the write at once")
    sent: list[str] = []
    execute = psycopg.AsyncClientCursor.execute
    command = psycopg.AsyncConnection._exec_command

    async def queued_script(cursor: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(str(query))
        return await execute(cursor, query, *args, **kwargs)

    def own_command(connection: Any, sql: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(bytes(sql).decode() if isinstance(sql, bytes) else str(sql))
        return command(connection, sql, *args, **kwargs)

    async with database.write() as session:  # the connection is made (SQLAlchemy's first-connect checks)
        await session.execute(sa.select(1))
    monkeypatch.setattr(psycopg.AsyncClientCursor, "execute", queued_script)
    monkeypatch.setattr(psycopg.AsyncConnection, "_exec_command", own_command)
    async with database.write() as session:
        await session.execute(sa.select(1))
        await _insert_later(session, database.dialect, "partner:1")
    assert [text.rsplit(";", 1)[-1].strip() for text in sent] == ["BEGIN", "COMMIT"]  # no COMMIT of its own
    assert await _owners(database) == ["partner:1"]
    sent.clear()
    async with database.write() as session:  # nothing queued: psycopg's own COMMIT
        await session.execute(sa.select(1))
    assert sent == ["BEGIN", "COMMIT"]


async def test_a_rollback_drops_the_queue_and_the_connection_starts_clean(database_url: str) -> None:
    database = Database(create_engine(database_url, pool_size=1, max_overflow=0))  # one connection, reused
    try:
        with pytest.raises(RuntimeError, match="changed my mind"):
            async with database.write() as session:
                await session.execute(sa.select(1))  # the connection is taken
                await _insert_later(session, database.dialect, "partner:1")
                raise RuntimeError("changed my mind")
        async with database.write() as session:
            await _insert_later(session, database.dialect, "partner:2")
        assert await _owners(database) == ["partner:2"]
    finally:
        await database.dispose()


async def test_a_savepoint_rolled_back_drops_only_its_own_writes(database: Database) -> None:
    async with database.write() as session:
        await _insert_later(session, database.dialect, "partner:1")
        savepoint = await session.begin_nested()
        await _insert_later(session, database.dialect, "partner:2")
        await savepoint.rollback()
        async with session.begin_nested():
            await _insert_later(session, database.dialect, "partner:3")
    assert await _owners(database) == ["partner:1", "partner:3"]


async def test_only_plain_sql_on_an_engine_that_sends_the_queue_is_queued(database: Database) -> None:
    if database.dialect != "postgresql":
        pytest.skip("SQLite runs every write at once")
    async with database.write() as session:
        with pytest.raises(TypeError, match="text"):
            await pipeline.run_later(session, sa.insert(_accounts), _account("partner:1"))
    bare = create_async_engine(normalise_database_url(str(database.engine.url.render_as_string(False))))
    try:
        async with AsyncSession(bare) as session, session.begin():
            write = bulk.insert(database.dialect, _accounts, [_account("partner:1")])
            with pytest.raises(RuntimeError, match="does not send queued writes"):
                await pipeline.run_later(session, write.statement, write.parameters)
    finally:
        await bare.dispose()
    assert await _owners(database) == []


async def test_a_queue_on_a_connection_that_breaks_is_dropped_with_its_unit_of_work(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs the write at once, in-process")
    database = Database(create_engine(database_url, pool_size=1, max_overflow=0))
    try:
        with pytest.raises(OperationalError):
            async with database.write() as session:
                pid = (await session.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
                await _insert_later(session, database.dialect, "partner:1")
                async with database.engine.connect() as admin:  # another connection: the database drops ours
                    await admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                await session.execute(sa.select(1))  # the queue is sent here, on the dead connection
        async with database.write() as session:  # a new connection, nothing left queued
            await _insert_later(session, database.dialect, "partner:2")
        assert await _owners(database) == ["partner:2"]
    finally:
        await database.dispose()
