"""`ledger.post_each` (the purchase path) writes its entries at once and adds its credits to their balance rows at
commit: committed balances always equal their entries, a rollback takes the credits with it, a savepoint gets
them at once, and concurrent postings to one hot account lose nothing (PostgreSQL)."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from partners.db.session import Database
from partners.kit.errors import IdempotencyConflict, Unprocessable
from partners.ledger import service
from partners.ledger.models import LedgerAccount, LedgerEntry
from partners.ledger.schemas import NewTransaction, Posting


async def _accounts(database: Database) -> tuple[LedgerAccount, LedgerAccount, LedgerAccount]:
    async with database.write() as session:
        expense = await service.open_account(
            session, owner="platform", kind="expense", currency="USD", may_go_negative=True, kept_as_sum=True
        )
        first = await service.open_account(session, owner="partner:1", kind="pending", currency="USD")
        second = await service.open_account(session, owner="partner:2", kind="pending", currency="USD")
    return expense, first, second


async def _pay(session: AsyncSession, key: str, expense: LedgerAccount, *shares: tuple[LedgerAccount, int]) -> int:
    postings = [Posting(expense, -sum(amount for _, amount in shares))]
    postings += [Posting(account, amount) for account, amount in shares]
    [transaction_id] = await service.post_each(session, [NewTransaction(key, "commission", postings)])
    return transaction_id


async def _posted(database: Database, account: LedgerAccount) -> tuple[int, int]:
    """(balance row, sum of entries) of an account, read in a fresh unit of work."""
    async with database.read() as session:
        row = (await service.account_balance(session, account.id)).posted
        summed = await session.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(LedgerEntry.amount), 0)).where(LedgerEntry.account_id == account.id)
        )
    return row, int(summed or 0)


async def _row(session: AsyncSession, account: LedgerAccount) -> int:
    """The balance row as stored, bypassing the ledger's reads."""
    stored = await session.scalar(sa.select(LedgerAccount.posted).where(LedgerAccount.id == account.id))
    return int(stored or 0)


async def test_credits_reach_the_balance_rows_at_commit(database: Database) -> None:
    expense, first, second = await _accounts(database)
    async with database.write() as session:
        await _pay(session, "sale-1", expense, (first, 700), (second, 300))
        await _pay(session, "sale-2", expense, (first, 50))
        stored_before_commit = await _row(session, first)
    assert stored_before_commit == 0  # not yet: credited (and locked) at commit
    assert await _posted(database, first) == (750, 750)
    assert await _posted(database, second) == (300, 300)
    assert await _posted(database, expense) == (-1050, -1050)


async def test_the_unit_of_work_sees_its_own_credits_before_it_reads_or_debits(database: Database) -> None:
    expense, first, _second = await _accounts(database)
    async with database.write() as session:
        await _pay(session, "sale", expense, (first, 500))
        assert (await service.account_balance(session, first.id)).posted == 500
        await _pay(session, "another sale", expense, (first, 20))
        # A refund before the commit takes money back from the account: its floor sees the 520.
        await service.transfer(
            session, idempotency_key="refund", kind="reversal", source=first, destination=expense, amount=510
        )
        assert await _row(session, first) == 10
    assert await _posted(database, first) == (10, 10)


async def test_a_rolled_back_unit_of_work_takes_its_credits_with_it(database: Database) -> None:
    expense, first, _second = await _accounts(database)
    with pytest.raises(RuntimeError):
        async with database.write() as session:
            await _pay(session, "sale-lost", expense, (first, 400))
            raise RuntimeError("the request failed after the posting")
    async with database.write_sessions() as session:  # one session: rolled back, then used again
        await _pay(session, "sale-lost-too", expense, (first, 400))
        await session.rollback()
        await _pay(session, "sale-kept", expense, (first, 25))
        await session.commit()
    assert await _posted(database, first) == (25, 25)


async def test_inside_a_savepoint_the_credits_are_applied_at_once(database: Database) -> None:
    expense, first, second = await _accounts(database)
    async with database.write() as session:
        async with session.begin_nested():
            await _pay(session, "sale-nested", expense, (first, 90))
            assert (await service.account_balance(session, first.id)).posted == 90
        savepoint = await session.begin_nested()
        await _pay(session, "sale-undone", expense, (second, 60))
        await savepoint.rollback()
    assert await _posted(database, first) == (90, 90)
    assert await _posted(database, second) == (0, 0)


async def test_concurrent_sales_crediting_one_hot_account_lose_nothing(database: Database) -> None:
    if database.dialect != "postgresql":
        pytest.skip("PostgreSQL only: SQLite serialises write units of work")
    expense, hot, other = await _accounts(database)
    barrier = asyncio.Barrier(12)

    async def sale(number: int) -> None:
        async with database.write() as session:
            await session.execute(sa.text("SELECT 1"))
            await barrier.wait()
            # Half of them list the accounts the other way round: the commit sorts them (no deadlock).
            shares = [(hot, number + 1), (other, 10)] if number % 2 else [(other, 10), (hot, number + 1)]
            await _pay(session, f"race-{number}", expense, *shares)

    await asyncio.gather(*(sale(number) for number in range(12)))
    assert await _posted(database, hot) == (78, 78)  # 1 + 2 + ... + 12
    assert await _posted(database, other) == (120, 120)


async def test_several_transactions_in_one_call_each_keep_their_idempotency(database: Database) -> None:
    """`post_each` writes a batch's transactions together: new ones get new ids in the order given, one already
    written under its key (same payload) gets its id back and writes nothing again."""
    expense, first, second = await _accounts(database)
    async with database.write() as session:
        kept = await _pay(session, "sale-1", expense, (first, 100))

    def pay(key: str, *shares: tuple[LedgerAccount, int]) -> NewTransaction:
        postings = [Posting(expense, -sum(amount for _, amount in shares))]
        return NewTransaction(key, "commission", postings + [Posting(account, amount) for account, amount in shares])

    async with database.write() as session:
        ids = await service.post_each(
            session, [pay("sale-2", (first, 7), (second, 3)), pay("sale-1", (first, 100)), pay("sale-3", (second, 5))]
        )
    assert ids[1] == kept and len(set(ids)) == 3 and ids[0] < ids[2]
    assert await _posted(database, first) == (107, 107)
    assert await _posted(database, second) == (8, 8)
    async with database.read() as session:
        entries = await session.scalar(sa.select(sa.func.count()).select_from(LedgerEntry))
    assert entries == 2 + 3 + 2  # sale-1 once


async def test_a_batch_with_a_key_reused_for_another_payload_or_twice_writes_nothing(database: Database) -> None:
    expense, first, _second = await _accounts(database)
    async with database.write() as session:
        await _pay(session, "sale-1", expense, (first, 100))
    other = NewTransaction("sale-1", "commission", [Posting(expense, -99), Posting(first, 99)])
    fresh = NewTransaction("sale-2", "commission", [Posting(expense, -5), Posting(first, 5)])
    for batch, error in (([fresh, other], IdempotencyConflict), ([fresh, fresh], Unprocessable)):
        with pytest.raises(error) as raised:
            async with database.write() as session:
                await service.post_each(session, batch)
        assert raised.value.field == "idempotency_key"
    assert await _posted(database, first) == (100, 100)


async def test_a_batch_of_replays_only_writes_nothing(database: Database) -> None:
    expense, first, _second = await _accounts(database)
    async with database.write() as session:
        kept = await _pay(session, "sale-1", expense, (first, 100))
    async with database.write() as session:
        again = await service.post_each(
            session, [NewTransaction("sale-1", "commission", [Posting(expense, -100), Posting(first, 100)])]
        )
    assert again == [kept]
    assert await _posted(database, first) == (100, 100)
    async with database.read() as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(LedgerEntry)) == 2
