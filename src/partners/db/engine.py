"""Async engines for SQLite (embedded) and PostgreSQL (production).

SQLite: WAL, foreign keys on, a busy timeout, and `BEGIN IMMEDIATE` for write units of work so two writers
never deadlock on a lock upgrade. Reads use a plain deferred `BEGIN`.
PostgreSQL: psycopg 3, READ COMMITTED; the ledger locks balance rows in a sorted order. Read connections plan every
statement with its parameters; write connections reuse plans, which a connection keeps 10 minutes at most
(`CUSTOM_PLANS`, `GENERIC_PLANS`, below). Read connections run each statement on its own and refuse writes
(`READ_ONLY`, below).
"""

from __future__ import annotations

import sqlite3
import time
import weakref
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from partners.db import pipeline

SQLITE_BUSY_TIMEOUT_MS = 30_000
WAL_SWITCH_RETRY_SECONDS = 0.02
# psycopg prepares a statement run 5 times; PostgreSQL then reuses a generic plan, made with the table sizes of
# that moment and remade only after an ANALYZE (autovacuum; never, where it is off). A plan made while a table was
# small scans the whole table as it grows: the purchase answers' UPDATE took 23 ms (82% of PostgreSQL's statement
# time) in the purchase benchmark, which runs on a fresh database with autovacuum off (bench/README.md, round 5).
# Read connections therefore plan each execution with its parameters (the dashboards' date ranges too). Write
# connections run short statements again and again, and planning them was a third of PostgreSQL's CPU per
# purchase batch (the chain query's alone 0.5-1.4 ms; round 8): they keep PostgreSQL's generic plans, and each
# is closed after `GENERIC_PLAN_MAX_AGE_SECONDS`, so that no plan outlives by more than that the table sizes
# it was made for, with or without autovacuum. The stored answers' UPDATE that round 5 caught, like every write
# `db.pipeline` queues, is sent with its values and planned each time.
CUSTOM_PLANS = "-c plan_cache_mode=force_custom_plan"
GENERIC_PLANS = "-c plan_cache_mode=auto"
GENERIC_PLAN_MAX_AGE_SECONDS = 600
# Read connections (`create_engine(read_only=True)`, the read units of work) run each statement on its own,
# outside a transaction block: under READ COMMITTED every statement of a transaction takes a snapshot of its own
# anyway, so a read unit of work sees the same, and it saves psycopg's BEGIN and the ROLLBACK at its end, two
# round trips: ~210-280 µs of a worker's CPU per read unit of work, measured in one process (bench/README.md,
# round 13). PostgreSQL refuses any write sent on them ("cannot execute ... in a read-only transaction"), so a
# write put in a read unit of work by mistake fails instead of being committed at once.
READ_ONLY = "-c default_transaction_read_only=on"
WRITE_OPTION = "partners_write"
# A pooled PostgreSQL connection is pinged before use only when it sat unused in the pool this long: SQLAlchemy's
# pre-ping, a round trip at every checkout, cost ~150-200 µs of a worker's CPU per unit of work (bench/README.md,
# round 7). A connection that breaks while in steady use (the database restarted under load) fails the one unit
# of work that meets it; SQLAlchemy then drops it and every connection opened before it, and the caller's retry
# gets a new one (requests are idempotent or answered 5xx, and purchase events and clicks are retried).
PING_AFTER_IDLE_SECONDS = 5.0
_RETURNED_AT = "partners_returned_at"


def normalise_database_url(url: str) -> str:
    """Accept plain `postgresql://` and `sqlite:///` URLs and pick the async drivers."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed.render_as_string(hide_password=False)


# How each engine was made, so that `sibling_engine` can make another one like it.
_RECIPES: weakref.WeakKeyDictionary[AsyncEngine, tuple[str, dict[str, Any]]] = weakref.WeakKeyDictionary()


def create_engine(url: str, *, generic_plans: bool = False, read_only: bool = False, **kwargs: Any) -> AsyncEngine:
    """JSON columns are read with orjson (the standard library's decoder was ~4% of a purchase batch's Python
    time in the workers: the chain query's bonus steps, bench/README.md round 6). `generic_plans`: PostgreSQL
    may reuse a statement's plan, and connections are replaced after `GENERIC_PLAN_MAX_AGE_SECONDS` (the write
    engine, `db.session.Database`). `read_only`: on PostgreSQL, statements run outside transaction blocks and
    writes are refused (`READ_ONLY`; the read engine); SQLite reads keep their transaction, which gives them
    one snapshot of the file."""
    url = normalise_database_url(url)
    given = {"json_deserializer": orjson.loads, **kwargs}
    if url.startswith("sqlite"):
        _ensure_sqlite_folder(url)
        engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **given)
        _configure_sqlite(engine)
    else:
        options = {"pool_size": 10, "max_overflow": 20, **given}
        if generic_plans:
            options.setdefault("pool_recycle", GENERIC_PLAN_MAX_AGE_SECONDS)
        ours = GENERIC_PLANS if generic_plans else CUSTOM_PLANS
        if read_only:
            ours = f"{ours} {READ_ONLY}"
            options.setdefault("isolation_level", "AUTOCOMMIT")
        engine = create_async_engine(url, connect_args={"options": _postgres_options(url, ours)}, **options)
        pipeline.listen(engine.sync_engine)
        _ping_after_idle(engine)
    _RECIPES[engine] = (url, kwargs)
    return engine


def _ping_after_idle(engine: AsyncEngine) -> None:
    dialect = engine.dialect

    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned_at = record.info.get(_RETURNED_AT)
        if returned_at is None or time.monotonic() - returned_at < PING_AFTER_IDLE_SECONDS:
            return  # new, or in steady use
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as error:  # the pool replaces the connection and checks out again
            raise DisconnectionError(f"a pooled connection idle for a while is gone: {error}") from error


def _postgres_options(url: str, ours: str) -> str:
    """The URL's own `options` (if any), then ours."""
    given = make_url(url).query.get("options", "")
    return " ".join([*(given if isinstance(given, tuple) else [given]), ours]).strip()


def sibling_engine(
    engine: AsyncEngine, *, generic_plans: bool = False, read_only: bool = False, **defaults: Any
) -> AsyncEngine:
    """Another engine on the same database with the same settings (`defaults` for those not given) and a
    connection pool of its own."""
    url, kwargs = _RECIPES[engine]
    return create_engine(url, generic_plans=generic_plans, read_only=read_only, **{**defaults, **kwargs})


def _ensure_sqlite_folder(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _switch_to_wal(cursor: Any) -> None:
    """WAL is kept in the file, so this switches a database once. The switch does not wait for the busy timeout:
    connections opening a new database at once (several workers or processes) failed with "database is locked"
    while another was switching. The loser waits (a blocking pause: only in that race) until the winner is done."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        cursor.execute("PRAGMA journal_mode")
        if str(cursor.fetchone()[0]).lower() == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(WAL_SWITCH_RETRY_SECONDS)


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when a transaction begins (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get(WRITE_OPTION):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"
