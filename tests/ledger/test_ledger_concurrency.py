"""Real committing connections started together on PostgreSQL (SQLite serialises write units of work).

Each contender is its own `database.write()` unit of work on its own pooled connection; all of them have a
connection and an open transaction before a barrier lets them fire at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from partners.db.engine import create_engine
from partners.db.session import Database
from partners.kit.errors import AppError, Conflict, InsufficientFunds
from partners.ledger import service
from partners.ledger.models import LedgerAccount, LedgerTransaction
from partners.ledger.schemas import Balance

CONTENDERS = 20
ROUNDS = 20
X = 100

T = TypeVar("T")


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    if database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL only: SQLite serialises write units of work (BEGIN IMMEDIATE)")
    database = Database(create_engine(database_url, pool_size=CONTENDERS + 5))
    yield database
    await database.dispose()


async def all_at_once(
    database: Database, count: int, operation: Callable[[AsyncSession, int], Awaitable[T]]
) -> list[T | AppError]:
    """Run `count` units of work that start together; each returns its result or the AppError it raised."""
    barrier = asyncio.Barrier(count)

    async def contender(number: int) -> T | AppError:
        try:
            async with database.write() as session:
                await session.execute(sa.text("SELECT 1"))  # a connection of its own, transaction begun
                await barrier.wait()
                return await operation(session, number)
        except AppError as error:
            return error

    return await asyncio.gather(*(contender(number) for number in range(count)))


async def run(database: Database, operation: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async with database.write() as session:
        return await operation(session)


async def open_funded_pair(database: Database, name: str, funds: int) -> tuple[LedgerAccount, LedgerAccount]:
    async def operation(session: AsyncSession) -> tuple[LedgerAccount, LedgerAccount]:
        bank = await service.open_account(session, owner="bank", kind="funding", currency="USD", may_go_negative=True)
        source = await service.open_account(session, owner=f"{name}-source", kind="wallet", currency="USD")
        destination = await service.open_account(session, owner=f"{name}-dest", kind="wallet", currency="USD")
        if funds:
            await service.transfer(
                session, idempotency_key=f"fund-{name}", kind="funding", source=bank, destination=source, amount=funds
            )
        return source, destination

    return await run(database, operation)


async def balance(database: Database, account: LedgerAccount) -> Balance:
    async with database.read() as session:
        return await service.account_balance(session, account.id)


def split(results: list[Any]) -> tuple[list[Any], list[AppError]]:
    errors = [result for result in results if isinstance(result, AppError)]
    return [result for result in results if not isinstance(result, AppError)], errors


Spend = Callable[[AsyncSession, LedgerAccount, LedgerAccount, str], Awaitable[object]]


async def reserve_x(session: AsyncSession, source: LedgerAccount, destination: LedgerAccount, key: str) -> object:
    return await service.reserve(
        session, idempotency_key=key, kind="payout", source=source, destination=destination, amount=X
    )


async def transfer_x(session: AsyncSession, source: LedgerAccount, destination: LedgerAccount, key: str) -> object:
    return await service.transfer(
        session, idempotency_key=key, kind="payment", source=source, destination=destination, amount=X
    )


async def race_to_spend(database: Database, name: str, spend: Spend) -> tuple[LedgerAccount, LedgerAccount]:
    """CONTENDERS units of work each spend X from an account holding 10·X: exactly ten may succeed."""
    source, destination = await open_funded_pair(database, name, 10 * X)

    async def contender(session: AsyncSession, number: int) -> int:
        await spend(session, source, destination, f"{name}-{number}")
        # The source row is locked by this unit of work: this is the value it commits.
        return (await service.account_balance(session, source.id)).available

    seen, errors = split(await all_at_once(database, CONTENDERS, contender))
    assert len(seen) == 10, f"{name}: {len(seen)} succeeded"
    assert all(type(error) is InsufficientFunds for error in errors), errors
    assert sorted(seen) == [n * X for n in range(10)], "each success saw its own, never negative, balance"
    return source, destination


async def test_concurrent_reserves_never_overspend(database: Database) -> None:
    for round_number in range(ROUNDS):
        source, destination = await race_to_spend(database, f"reserve-{round_number}", reserve_x)
        assert await balance(database, source) == Balance(source.id, "USD", 10 * X, 10 * X, 0)
        assert await balance(database, destination) == Balance(destination.id, "USD", 0, 0, 10 * X)


async def test_concurrent_transfers_never_overspend(database: Database) -> None:
    for round_number in range(ROUNDS):
        source, destination = await race_to_spend(database, f"transfer-{round_number}", transfer_x)
        assert await balance(database, source) == Balance(source.id, "USD", 0, 0, 0)
        assert await balance(database, destination) == Balance(destination.id, "USD", 10 * X, 0, 0)


async def open_concurrently(database: Database, owner: str) -> None:
    async def open_it(session: AsyncSession, _: int) -> int:
        account = await service.open_account(session, owner=owner, kind="wallet", currency="EUR")
        return account.id

    ids, errors = split(await all_at_once(database, 10, open_it))
    assert errors == []
    assert len(set(ids)) == 1
    async with database.read() as session:
        rows = await session.scalar(
            sa.select(sa.func.count()).select_from(LedgerAccount).where(LedgerAccount.owner == owner)
        )
    assert rows == 1


async def test_concurrent_first_use_of_an_account_gives_one_account(database: Database) -> None:
    for round_number in range(5):
        await open_concurrently(database, f"newcomer-{round_number}")


async def test_concurrent_replays_of_one_key_move_money_once(database: Database) -> None:
    source, destination = await open_funded_pair(database, "replay", 10 * X)

    async def pay(session: AsyncSession, _: int) -> int:
        transaction = await service.transfer(
            session, idempotency_key="once", kind="payment", source=source, destination=destination, amount=X
        )
        return transaction.id

    ids, errors = split(await all_at_once(database, 10, pay))
    assert errors == []
    assert len(set(ids)) == 1
    assert (await balance(database, source)).posted == 9 * X


async def test_concurrent_posts_and_voids_of_one_hold_resolve_it_once(database: Database) -> None:
    for round_number in range(5):
        source, destination = await open_funded_pair(database, f"hold-{round_number}", 10 * X)
        async with database.write() as session:
            hold = await service.reserve(
                session,
                idempotency_key=f"hold-{round_number}",
                kind="payout",
                source=source,
                destination=destination,
                amount=4 * X,
            )

        async def post_or_void(session: AsyncSession, number: int, hold_id: int = hold.id) -> str:
            if number % 2:
                await service.void_hold(session, hold_id)
                return "voided"
            transaction = await service.post_hold(session, hold_id, amount=3 * X)
            return f"posted as {transaction.id}"

        outcomes, errors = split(await all_at_once(database, 10, post_or_void))
        assert all(type(error) is Conflict for error in errors), errors
        assert len(set(outcomes)) == 1, outcomes
        assert len(outcomes) == 5  # the winner's side all agree; the other side all conflict
        if outcomes[0] == "voided":
            assert await balance(database, source) == Balance(source.id, "USD", 10 * X, 0, 0)
        else:
            assert await balance(database, source) == Balance(source.id, "USD", 7 * X, 0, 0)
            assert await balance(database, destination) == Balance(destination.id, "USD", 3 * X, 0, 0)


async def test_concurrent_reversals_reverse_once(database: Database) -> None:
    source, destination = await open_funded_pair(database, "reversal", 10 * X)
    payment = await run(
        database,
        lambda s: service.transfer(
            s, idempotency_key="pay", kind="payment", source=source, destination=destination, amount=X
        ),
    )

    async def reverse(session: AsyncSession, number: int) -> int:
        reversal = await service.reverse_transaction(session, payment.id, idempotency_key=f"reverse-{number}")
        return reversal.id

    ids, errors = split(await all_at_once(database, 10, reverse))
    assert len(ids) == 1
    assert all(type(error) is Conflict for error in errors), errors
    assert (await balance(database, source)).posted == 10 * X
    async with database.read() as session:
        reversals = await session.scalar(
            sa.select(sa.func.count()).select_from(LedgerTransaction).where(LedgerTransaction.reverses_id == payment.id)
        )
    assert reversals == 1


async def test_opposite_transfers_do_not_deadlock(database: Database) -> None:
    first, second = await open_funded_pair(database, "crossing", 10 * X)
    await run(
        database,
        lambda s: service.transfer(
            s, idempotency_key="fund-second", kind="funding", source=first, destination=second, amount=5 * X
        ),
    )

    async def cross(session: AsyncSession, number: int) -> int:
        source, destination = (first, second) if number % 2 else (second, first)
        transaction = await service.transfer(
            session, idempotency_key=f"cross-{number}", kind="payment", source=source, destination=destination, amount=1
        )
        return transaction.id

    ids, errors = split(await all_at_once(database, CONTENDERS, cross))
    assert errors == []
    assert len(set(ids)) == CONTENDERS
    assert (await balance(database, first)).posted == 5 * X
    assert (await balance(database, second)).posted == 5 * X
