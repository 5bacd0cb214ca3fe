"""Writes whose results nobody reads, sent to PostgreSQL together, in one round trip.

A batch of purchase events ran ~17 statements, each through SQLAlchemy and psycopg: ~250-400 µs of the worker's
CPU and a round trip each, the larger part of the workers' CPU per event (bench/README.md, round 7). Most of
them write rows the unit of work never reads back: the commissions, ledger entries, balance credits, rollup
counters and stored answers. `run_later` queues such a statement on the unit of work's connection, and the queue
goes to PostgreSQL as ONE multi-statement query (parameters bound on the client by psycopg's `ClientCursor`:
~100 µs a send plus ~40 µs a statement; psycopg's pipeline mode waited on the socket after every statement)
just before anything else runs on that connection — its next statement, savepoint or commit. So whatever the
unit of work runs next sees the queued writes, exactly as if they had run at once; only their errors come later,
raised by that next statement or by the commit, and the transaction rolls back as usual. At commit the `COMMIT`
ends the same query (psycopg then finds the transaction over and sends none): one round trip less per unit of
work. A rollback (of the transaction, or of the savepoint they were queued in) drops the queue. SQLite runs the
statement at once (in-process: no round trip to save).

Only plain SQL (`sqlalchemy.text`) with one set of parameters psycopg adapts itself (str, int, lists) may be
queued: the statements of `db.bulk` on PostgreSQL, whose rows travel as one JSON document."""

from __future__ import annotations

import weakref
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.util.concurrency import await_

# Each connection's queue, by the SQLAlchemy `Connection` of the unit of work (one per checkout: the queue can
# never reach the next user of the DBAPI connection, nor a new one after a disconnect).
_QUEUES: weakref.WeakKeyDictionary[Connection, list[tuple[str, dict[str, Any]]]] = weakref.WeakKeyDictionary()
_SQL: weakref.WeakKeyDictionary[sa.TextClause, str] = weakref.WeakKeyDictionary()
# The dialects of the engines that send their connections' queues (an engine with other execution options shares
# its dialect and its listeners).
_LISTENING: weakref.WeakSet[Dialect] = weakref.WeakSet()


Parameters = dict[str, Any] | list[dict[str, Any]]  # a list: an executemany (SQLite's `db.bulk` statements)


async def run_later(session: AsyncSession, statement: sa.Executable, parameters: Parameters | None = None) -> None:
    """Run a write whose result is not read: queued on PostgreSQL, at once on SQLite."""
    # Not `db.session.dialect_name`: `db.session` imports `db.engine`, which imports this module.
    if session.get_bind().dialect.name != "postgresql":
        await session.execute(statement, parameters)
        return
    connection = (await session.connection()).sync_connection
    assert connection is not None  # a connection the unit of work holds
    _queue(connection, statement, parameters)


def run_later_in(session: Session, statement: sa.Executable, parameters: Parameters | None = None) -> None:
    """`run_later` for synchronous code: session events (the rollups and balance credits written at commit)."""
    if session.get_bind().dialect.name != "postgresql":
        session.execute(statement, parameters)
        return
    _queue(session.connection(), statement, parameters)


def _queue(connection: Connection, statement: sa.Executable, parameters: Parameters | None) -> None:
    if not isinstance(statement, sa.TextClause) or isinstance(parameters, list):
        raise TypeError("only sqlalchemy.text() statements with one set of parameters are queued")
    if connection.dialect not in _LISTENING:
        raise RuntimeError("this engine does not send queued writes: make it with db.engine.create_engine")
    sql = _SQL.get(statement)
    if sql is None:
        sql = _SQL[statement] = str(statement.compile(dialect=connection.dialect))
    _QUEUES.setdefault(connection, []).append((sql, parameters or {}))


def send_queued(connection: Connection, *, then_commit: bool = False) -> None:
    """Send the connection's queued writes in one round trip (and the COMMIT after them, `then_commit`). The
    first error is raised as SQLAlchemy raises a statement's (`IntegrityError`...), naming the statements."""
    queued = _QUEUES.pop(connection, None)
    if not queued:
        return
    try:
        await_(_pipelined(connection.connection.driver_connection, queued, then_commit))
    except psycopg.Error as error:
        statements = "; ".join(sql for sql, _ in queued)
        raise DBAPIError.instance(statements, None, error, psycopg.Error) from error


async def _pipelined(driver: Any, queued: list[tuple[str, dict[str, Any]]], then_commit: bool) -> None:
    async with psycopg.AsyncClientCursor(driver) as cursor:
        statements = [cursor.mogrify(sql, parameters) for sql, parameters in queued]
        await cursor.execute(";\n".join([*statements, "COMMIT"] if then_commit else statements))


def _drop_queued(connection: Connection, *_: Any) -> None:
    _QUEUES.pop(connection, None)


def _before_statement(connection: Connection, *_: Any) -> None:
    send_queued(connection)


def _before_commit(connection: Connection) -> None:
    send_queued(connection, then_commit=True)


def listen(engine: Engine) -> None:
    """Send the queue before each statement (savepoints included) and at commit; drop it at a rollback."""
    event.listen(engine, "before_cursor_execute", _before_statement)
    event.listen(engine, "commit", _before_commit)
    event.listen(engine, "rollback", _drop_queued)
    event.listen(engine, "rollback_savepoint", _drop_queued)
    _LISTENING.add(engine.dialect)
