"""`db.bulk`: many rows in one statement, the same result on SQLite (executemany) and PostgreSQL (one JSON
document): column types bind as usual, conflicts are skipped or summed, updates set or add, and rows missing a
column with a Python-side default are refused."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, cast

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from partners.db import bulk
from partners.db.session import Database
from partners.events.models import HostEvent
from partners.ledger.models import LedgerAccount
from partners.rollups.models import PartnerDayRevenue
from partners.settings import Settings
from tests.factories import create_partner, create_program, ledger_account_row

_accounts = cast(sa.Table, LedgerAccount.__table__)
_events = cast(sa.Table, HostEvent.__table__)
_revenue = cast(sa.Table, PartnerDayRevenue.__table__)
AT = datetime(2026, 11, 24, 12, 30, 15, 123456, tzinfo=UTC)


def _account(owner: str, currency: str, posted: int = 0) -> dict[str, Any]:
    return ledger_account_row(owner, currency, posted=posted, created_at=AT)


async def _run(session: AsyncSession, statement: bulk.Bulk) -> sa.Result[Any]:
    return await session.execute(statement.statement, statement.parameters)


async def test_insert_binds_column_types_skips_conflicts_and_returns_the_new_rows(database: Database) -> None:
    async with database.write() as session:
        await _run(session, bulk.insert(database.dialect, _accounts, [_account("partner:1", "usd", 5)]))
    rows = [_account("partner:1", "USD", 99), _account("partner:2", "eur", 7), _account("partner:3", "USD")]
    async with database.write() as session:
        returned = await _run(
            session,
            bulk.insert(database.dialect, _accounts, rows, skip_conflicts=True, returning=("owner", "created_at")),
        )
        new = sorted(returned.all())
    # partner:1 USD existed (the currency was upper-cased on the way in): skipped, its balance untouched.
    assert new == [("partner:2", AT), ("partner:3", AT)]
    async with database.read() as session:
        stored = (await session.execute(sa.select(_accounts.c.owner, _accounts.c.currency, _accounts.c.posted))).all()
    assert sorted(stored) == [("partner:1", "USD", 5), ("partner:2", "EUR", 7), ("partner:3", "USD", 0)]


async def test_json_columns_and_times_round_trip(database: Database) -> None:
    answer = {"commissions": [{"partner": "ref1", "amount": 1234}], "note": "ünïcode ✓", "none": None}
    row = {
        "kind": "purchase",
        "external_id": "p-1",
        "payload_hash": "x" * 64,
        "status_code": 201,
        "response": answer,
        "created_at": AT,
    }
    async with database.write() as session:
        await _run(session, bulk.insert(database.dialect, _events, [row]))
    async with database.read() as session:
        stored = (await session.scalars(sa.select(HostEvent))).one()
    assert stored.response == answer and stored.created_at == AT and stored.status_code == 201


async def test_refuses_what_a_plain_insert_would_refuse_or_silently_default(database: Database) -> None:
    naive = _account("partner:1", "USD") | {"created_at": datetime(2026, 11, 24, 12, 0)}
    async with database.write() as session:
        with pytest.raises((ValueError, sa.exc.StatementError), match="naive"):  # SQLite: wrapped by SQLAlchemy
            await _run(session, bulk.insert(database.dialect, _accounts, [naive]))
    without_default = {key: value for key, value in _account("partner:1", "USD").items() if key != "kept_as_sum"}
    with pytest.raises(ValueError, match="kept_as_sum"):
        bulk.insert(database.dialect, _accounts, [without_default])
    with pytest.raises(ValueError, match="no rows"):
        bulk.insert(database.dialect, _accounts, [])
    with pytest.raises(ValueError, match="no column 'balance'"):
        bulk.update(database.dialect, _accounts, [{"id": 1, "balance": 3}])


async def test_update_sets_or_adds_by_key_and_leaves_other_rows(database: Database) -> None:
    rows = [_account(f"partner:{number}", "USD", 100) for number in range(1, 4)]
    async with database.write() as session:
        ids = dict(
            (await _run(session, bulk.insert(database.dialect, _accounts, rows, returning=("owner", "id")))).all()
        )
    changes = [
        {"id": ids["partner:3"], "posted": 5, "kind": "payable"},
        {"id": ids["partner:1"], "posted": -30, "kind": "x"},
    ]
    async with database.write() as session:
        await _run(session, bulk.update(database.dialect, _accounts, changes, add=("posted",)))
    async with database.read() as session:
        stored = (await session.execute(sa.select(_accounts.c.owner, _accounts.c.kind, _accounts.c.posted))).all()
    assert sorted(stored) == [("partner:1", "x", 70), ("partner:2", "pending", 100), ("partner:3", "payable", 105)]


async def test_add_counts_inserts_new_keys_and_sums_into_existing_ones(database: Database, settings: Settings) -> None:
    async with database.write() as session:
        program, tiers = await create_program(session, settings)
        partner = await create_partner(session, program, tiers["starter"])
    monday, tuesday = date(2026, 11, 23), date(2026, 11, 24)

    def revenue(day: date, currency: str, purchases: int, gross: int) -> dict[str, Any]:
        return {
            "partner_id": partner.id,
            "day": day,
            "currency": currency,
            "purchases": purchases,
            "gross": gross,
            "refunded": 0,
        }

    keys = ("partner_id", "day", "currency")
    for rows in ([revenue(monday, "USD", 1, 1000)], [revenue(monday, "USD", 2, 250), revenue(tuesday, "usd", 1, 5)]):
        async with database.write() as session:
            await _run(session, bulk.add_counts(database.dialect, _revenue, keys, rows))
    async with database.read() as session:
        stored = (
            await session.execute(
                sa.select(_revenue.c.day, _revenue.c.currency, _revenue.c.purchases, _revenue.c.gross)
            )
        ).all()
    assert sorted(stored) == [(monday, "USD", 3, 1250), (tuesday, "USD", 1, 5)]
