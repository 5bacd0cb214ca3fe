"""Many rows in one statement, for the write paths that handle batches (purchase events, clicks, rollups).

PostgreSQL: the rows travel as ONE JSON document, the statement's only parameter, unpacked by the database with
`json_to_recordset`. psycopg runs an executemany as one Bind/Execute per row, each row's parameters dumped in
Python, and SQLAlchemy's multi-row VALUES renders a parameter per value: both cost more than the statement
itself for a batch of purchases (bench/README.md, round 4); the C JSON encoder (orjson) writes a whole batch
in microseconds. SQLite: an ordinary executemany (sqlite3 reuses its prepared statement, in-process).

Values go through their column type's `process_bind_param` (UTC checks, upper-case currencies), as with any
SQLAlchemy insert. Python-side column defaults are NOT applied: every row gives every column the statement
writes (the same keys in every row), and a table column with a Python-side default must be among them.

Order: PostgreSQL reads the document in order, so rows are inserted or upserted in the order given; `update`
locks its rows in key order whatever the plan, so concurrent batches never deadlock on each other.
RETURNING rows come in no promised order: match them to the input by a returned key.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.types import TypeDecorator

Row = Mapping[str, Any]
_PG_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]
_quote = _PG_DIALECT.identifier_preparer.quote


class Bulk(NamedTuple):
    """A statement and its parameters: `session.execute(bulk.statement, bulk.parameters)`."""

    statement: sa.Executable
    parameters: dict[str, Any] | list[dict[str, Any]]


def insert(
    dialect: str,
    table: sa.Table,
    rows: Sequence[Row],
    *,
    skip_conflicts: bool = False,
    returning: Sequence[str] = (),
) -> Bulk:
    """INSERT the rows; with `skip_conflicts`, a row that breaks a unique constraint is left out (`ON CONFLICT
    DO NOTHING`); `returning` names the columns of the inserted rows to read back."""
    columns = _columns(table, rows)
    _check_defaults_given(table, columns)
    if dialect != "postgresql":
        return Bulk(_sqlite_insert(table, skip_conflicts, tuple(returning)), [dict(row) for row in rows])
    return Bulk(_pg_insert(table, columns, skip_conflicts, tuple(returning)), _document(_bound(table, columns, rows)))


def add_counts(dialect: str, table: sa.Table, keys: Sequence[str], rows: Sequence[Row]) -> Bulk:
    """Upsert adding each row's other columns (counters) to the stored row with the same `keys` (a unique
    index). Each key appears once in `rows`."""
    columns = _columns(table, rows)
    _check_defaults_given(table, columns)
    counters = tuple(name for name in columns if name not in keys)
    if dialect != "postgresql":
        return Bulk(_sqlite_add_counts(table, tuple(keys), counters), [dict(row) for row in rows])
    return Bulk(_pg_add_counts(table, columns, tuple(keys), counters), _document(_bound(table, columns, rows)))


def update(dialect: str, table: sa.Table, rows: Sequence[Row], *, key: str = "id", add: Sequence[str] = ()) -> Bulk:
    """UPDATE the row whose `key` each row gives: the other columns are set to the given values, or, for those
    named in `add`, the given values added to them. Each key appears once in `rows`."""
    columns = _columns(table, rows)
    if key not in columns:
        raise ValueError(f"the rows do not give the key {key!r}")
    if dialect != "postgresql":
        return Bulk(_sqlite_update(table, columns, key, tuple(add)), [_prefixed(row) for row in rows])
    bound = _bound(table, columns, rows)
    keys = [row[key] for row in bound]
    return Bulk(_pg_update(table, columns, key, tuple(add)), {**_document(bound), "keys": keys})


# --- the pieces ---


def _columns(table: sa.Table, rows: Sequence[Row]) -> tuple[str, ...]:
    if not rows:
        raise ValueError("no rows to write")
    columns = tuple(rows[0])
    unknown = [name for name in columns if name not in table.c]
    if unknown:
        raise ValueError(f"{table.name} has no column {unknown[0]!r}")
    return columns


@functools.cache
def _check_defaults_given(table: sa.Table, columns: tuple[str, ...]) -> None:
    missing = [c.name for c in table.c if c.default is not None and not c.primary_key and c.name not in columns]
    if missing:
        raise ValueError(f"the rows of {table.name} must give {missing[0]!r} (its default is not applied here)")


def _bound(table: sa.Table, columns: tuple[str, ...], rows: Sequence[Row]) -> Sequence[Row]:
    """The rows with each value bound as its column's type binds it (the JSON document bypasses the types)."""
    decorated: list[tuple[str, TypeDecorator[Any]]] = [
        (name, kind) for name in columns if isinstance(kind := table.c[name].type, TypeDecorator)
    ]
    if not decorated:
        return rows
    return [
        {**row, **{name: kind.process_bind_param(row[name], _PG_DIALECT) for name, kind in decorated}} for row in rows
    ]


def _document(rows: Sequence[Row]) -> dict[str, str]:
    """The rows as the statement's one JSON parameter."""
    return {"rows": orjson.dumps(rows).decode()}


def _recordset(table: sa.Table, columns: tuple[str, ...]) -> str:
    types = ", ".join(f"{_quote(name)} {table.c[name].type.compile(dialect=_PG_DIALECT)}" for name in columns)
    return f"json_to_recordset(CAST(:rows AS json)) AS given({types})"


def _names(columns: Sequence[str]) -> str:
    return ", ".join(_quote(name) for name in columns)


@functools.cache
def _pg_insert(
    table: sa.Table, columns: tuple[str, ...], skip_conflicts: bool, returning: tuple[str, ...]
) -> sa.Executable:
    names = _names(columns)
    text = f"INSERT INTO {_quote(table.name)} ({names}) SELECT {names} FROM {_recordset(table, columns)}"
    if skip_conflicts:
        text += " ON CONFLICT DO NOTHING"
    if not returning:
        return sa.text(text)
    return sa.text(f"{text} RETURNING {_names(returning)}").columns(*(table.c[name] for name in returning))


@functools.cache
def _sqlite_insert(table: sa.Table, skip_conflicts: bool, returning: tuple[str, ...]) -> sa.Executable:
    statement = sqlite.insert(table)
    if skip_conflicts:
        statement = statement.on_conflict_do_nothing()
    return statement.returning(*(table.c[name] for name in returning)) if returning else statement


@functools.cache
def _pg_add_counts(
    table: sa.Table, columns: tuple[str, ...], keys: tuple[str, ...], counters: tuple[str, ...]
) -> sa.Executable:
    name = _quote(table.name)
    added = ", ".join(f"{_quote(c)} = {name}.{_quote(c)} + excluded.{_quote(c)}" for c in counters)
    return sa.text(
        f"INSERT INTO {name} ({_names(columns)}) SELECT {_names(columns)} FROM {_recordset(table, columns)} "
        f"ON CONFLICT ({_names(keys)}) DO UPDATE SET {added}"
    )


@functools.cache
def _sqlite_add_counts(table: sa.Table, keys: tuple[str, ...], counters: tuple[str, ...]) -> sa.Executable:
    """Built once per table: building the upsert (its SET clause) cost more than running it."""
    statement = sqlite.insert(table)
    return statement.on_conflict_do_update(
        index_elements=list(keys), set_={name: table.c[name] + statement.excluded[name] for name in counters}
    )


@functools.cache
def _pg_update(table: sa.Table, columns: tuple[str, ...], key: str, add: tuple[str, ...]) -> sa.Executable:
    # The subquery locks the rows in key order before the UPDATE reaches them, in the UPDATE's own lock mode:
    # FOR UPDATE would wait for the KEY SHARE locks that inserting rows which reference them takes (it deadlocked
    # two batches that had both inserted ledger entries for the same accounts, tests/ledger).
    # The keys come once more as an array (`keys`): the planner takes json_to_recordset for 100 rows and scans a
    # table of a few thousand rows whole rather than look 100 keys up; an array's length it knows (each
    # execution is planned with its parameters, `db.engine`).
    name, quoted_key = _quote(table.name), _quote(key)
    keys = f"ANY(CAST(:keys AS {table.c[key].type.compile(dialect=_PG_DIALECT)}[]))"
    changes = ", ".join(
        f"{_quote(c)} = {name}.{_quote(c)} + given.{_quote(c)}" if c in add else f"{_quote(c)} = given.{_quote(c)}"
        for c in columns
        if c != key
    )
    return sa.text(
        f"UPDATE {name} SET {changes} FROM (SELECT given.* FROM {_recordset(table, columns)} "
        f"JOIN {name} AS locked ON locked.{quoted_key} = given.{quoted_key} WHERE locked.{quoted_key} = {keys} "
        f"ORDER BY given.{quoted_key} FOR NO KEY UPDATE OF locked) AS given "
        f"WHERE {name}.{quoted_key} = given.{quoted_key} AND {name}.{quoted_key} = {keys}"
    )


def _prefixed(row: Row) -> dict[str, Any]:
    return {f"b_{name}": value for name, value in row.items()}


@functools.cache
def _sqlite_update(table: sa.Table, columns: tuple[str, ...], key: str, add: tuple[str, ...]) -> sa.Executable:
    given = {name: sa.bindparam(f"b_{name}", type_=table.c[name].type) for name in columns}
    values = {name: table.c[name] + given[name] if name in add else given[name] for name in columns if name != key}
    return sa.update(table).where(table.c[key] == given[key]).values(values)
