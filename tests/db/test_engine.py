"""`db.engine` on PostgreSQL: on read connections, statements psycopg prepares are planned with their parameters at
each execution (no generic plan made while a table was small and kept as it grows); write connections keep
generic plans and are replaced after `GENERIC_PLAN_MAX_AGE_SECONDS`; a URL's own `options` still apply; a pooled
connection is pinged before use only after it sat idle (a dead one is then replaced unseen); read units of work
run each statement outside a transaction block and PostgreSQL refuses their writes."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from partners.db import engine as engine_module
from partners.db.engine import create_engine
from partners.db.session import Database
from partners.jobs.models import Job
from tests.conftest import IN_CI, PG_URL, prepare_postgres

PREPARED_AFTER = 5  # psycopg's prepare_threshold: from the 6th execution on, a statement runs prepared
PREPARED_RUNS = 10  # PostgreSQL would try a generic plan from the 6th of them on
CUSTOM_FIRST = 5  # PostgreSQL plans the first 5 runs of a prepared statement with their parameters


@pytest.fixture
def postgres_url() -> str:
    error = prepare_postgres()
    if error:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required under CI=true: {error}")
        pytest.skip(f"PostgreSQL unavailable: {error}")
    return PG_URL


async def _plans_of_a_lookup(engine: AsyncEngine) -> tuple[int, int]:
    """(generic, custom) plans PostgreSQL made for a lookup run PREPARED_AFTER + PREPARED_RUNS times."""
    lookup = sa.text("SELECT count(*) FROM host_events WHERE id = :id")
    async with engine.connect() as conn:
        for number in range(PREPARED_AFTER + PREPARED_RUNS):
            await conn.execute(lookup, {"id": number})
        generic, custom = (
            await conn.execute(
                sa.text(
                    "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                    "WHERE statement LIKE 'SELECT count(*) FROM host_events%'"
                )
            )
        ).one()
    return int(generic), int(custom)


async def test_prepared_statements_are_never_run_on_a_generic_plan_by_readers(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    try:
        assert await _plans_of_a_lookup(engine) == (0, PREPARED_RUNS)
    finally:
        await engine.dispose()


async def test_writers_reuse_generic_plans_on_connections_of_limited_age(postgres_url: str) -> None:
    database = Database(create_engine(postgres_url))
    try:
        generic, custom = await _plans_of_a_lookup(database.write_sessions.kw["bind"])
        assert (generic, custom) == (PREPARED_RUNS - CUSTOM_FIRST, CUSTOM_FIRST)
        assert await _plans_of_a_lookup(database.read_sessions.kw["bind"]) == (0, PREPARED_RUNS)  # reads: each time
        assert database.write_sessions.kw["bind"].pool._recycle == engine_module.GENERIC_PLAN_MAX_AGE_SECONDS
    finally:
        await database.dispose()


async def test_a_write_connection_is_replaced_once_its_plans_are_too_old(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "GENERIC_PLAN_MAX_AGE_SECONDS", 0)  # any connection is too old
    engine = create_engine(postgres_url, generic_plans=True, pool_size=1, max_overflow=0)
    try:
        first = await _backend_pid(engine)
        assert await _backend_pid(engine) != first
    finally:
        await engine.dispose()


async def test_the_urls_own_options_still_apply(postgres_url: str) -> None:
    url = sa.make_url(postgres_url).update_query_dict({"options": "-c statement_timeout=4321"})
    engine = create_engine(url.render_as_string(hide_password=False))
    try:
        async with engine.connect() as conn:
            timeout = (await conn.execute(sa.text("SHOW statement_timeout"))).scalar_one()
            mode = (await conn.execute(sa.text("SHOW plan_cache_mode"))).scalar_one()
    finally:
        await engine.dispose()
    assert timeout == "4321ms"
    assert mode == "force_custom_plan"


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.begin() as conn:
        return int((await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one())


async def _terminate(postgres_url: str, pid: int) -> None:
    admin = create_engine(postgres_url)
    try:
        async with admin.connect() as conn:
            await conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await admin.dispose()


def _count_pings(monkeypatch: pytest.MonkeyPatch, engine: AsyncEngine) -> list[object]:
    pings: list[object] = []
    ping = engine.dialect.do_ping

    def counted(dbapi_connection: object) -> bool:
        pings.append(dbapi_connection)
        return ping(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    return pings


async def test_a_connection_idle_in_the_pool_is_pinged_and_replaced_if_gone(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_SECONDS", 0.0)  # every connection returned is "idle"
    engine = create_engine(postgres_url, pool_size=1, max_overflow=0)
    pings = _count_pings(monkeypatch, engine)
    try:
        first = await _backend_pid(engine)
        assert pings == []  # a new connection is not pinged
        await _terminate(postgres_url, first)
        second = await _backend_pid(engine)  # the ping found it gone: a new connection, no error
        assert second != first
        assert len(pings) == 1
    finally:
        await engine.dispose()


async def test_a_connection_in_steady_use_is_not_pinged_and_a_broken_one_fails_once(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(postgres_url, pool_size=1, max_overflow=0)
    pings = _count_pings(monkeypatch, engine)
    try:
        first = await _backend_pid(engine)
        assert [await _backend_pid(engine) for _ in range(3)] == [first] * 3
        assert pings == []
        await _terminate(postgres_url, first)
        with pytest.raises(DBAPIError) as failed:
            await _backend_pid(engine)
        assert failed.value.connection_invalidated
        assert await _backend_pid(engine) != first  # the pool dropped the broken connection
    finally:
        await engine.dispose()


async def test_a_read_unit_of_work_runs_each_statement_on_its_own(postgres_url: str) -> None:
    """No BEGIN and no ROLLBACK: each statement is a transaction of its own, so `now()` (a transaction's start)
    moves from one statement to the next."""
    database = Database(create_engine(postgres_url))
    try:
        async with database.read() as session:
            first = await session.scalar(sa.text("SELECT now()"))
            await session.execute(sa.text("SELECT pg_sleep(0.01)"))
            second = await session.scalar(sa.text("SELECT now()"))
        async with database.write() as session:  # a write unit of work is one transaction
            start = await session.scalar(sa.text("SELECT now()"))
            await session.execute(sa.text("SELECT pg_sleep(0.01)"))
            same = await session.scalar(sa.text("SELECT now()"))
    finally:
        await database.dispose()
    assert first is not None and second is not None and second > first
    assert start == same


async def test_a_write_in_a_read_unit_of_work_is_refused_and_nothing_is_stored(postgres_url: str) -> None:
    database = Database(create_engine(postgres_url))
    jobs = sa.select(sa.func.count()).select_from(Job).where(Job.name == "read-only-probe")
    try:
        async with database.write() as session:
            before = await session.scalar(jobs)
        with pytest.raises(DBAPIError, match="read-only transaction"):
            async with database.read() as session:
                await session.execute(
                    sa.text(
                        "INSERT INTO jobs (name, payload, status, attempts, max_attempts, run_after, created_at) "
                        "VALUES ('read-only-probe', '{}', 'queued', 0, 1, now(), now())"
                    )
                )
        async with database.write() as session:
            after = await session.scalar(jobs)
    finally:
        await database.dispose()
    assert before == after == 0
