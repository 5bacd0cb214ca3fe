"""The ledger service, one unit of work per operation, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from partners.db.session import Database
from partners.kit.errors import (
    AppError,
    Conflict,
    IdempotencyConflict,
    InsufficientFunds,
    NotFound,
    Unprocessable,
)
from partners.ledger import service
from partners.ledger.models import LedgerAccount, LedgerEntry, LedgerHold, LedgerTransaction
from partners.ledger.schemas import Balance, Posting

T = TypeVar("T")


async def run(database: Database, operation: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """One committed unit of work."""
    async with database.write() as session:
        return await operation(session)


async def rejected(database: Database, operation: Callable[[AsyncSession], Awaitable[Any]]) -> AppError:
    """Run a unit of work that must fail; it is rolled back. Returns the error."""
    with pytest.raises(AppError) as caught:
        async with database.write() as session:
            await operation(session)
    return caught.value


async def open_account(
    database: Database, owner: str, kind: str = "wallet", currency: str = "USD", **flags: bool
) -> LedgerAccount:
    return await run(
        database,
        lambda s: service.open_account(s, owner=owner, kind=kind, currency=currency, **flags),
    )


async def balance(database: Database, account: LedgerAccount) -> Balance:
    async with database.read() as session:
        return await service.account_balance(session, account.id)


async def count(database: Database, model: type[Any]) -> int:
    async with database.read() as session:
        return int(await session.scalar(sa.select(sa.func.count()).select_from(model)) or 0)


async def fund(database: Database, account: LedgerAccount, amount: int, key: str) -> None:
    """Credit `account` from a floorless source account in its currency."""
    source = await open_account(database, "bank", "funding", account.currency, may_go_negative=True)
    await run(
        database,
        lambda s: service.transfer(
            s, idempotency_key=key, kind="funding", source=source, destination=account, amount=amount
        ),
    )


@pytest.fixture
async def alice(database: Database) -> LedgerAccount:
    return await open_account(database, "alice")


@pytest.fixture
async def bob(database: Database) -> LedgerAccount:
    return await open_account(database, "bob")


@pytest.fixture
async def funded_alice(database: Database, alice: LedgerAccount) -> LedgerAccount:
    await fund(database, alice, 1_000, "fund-alice")
    return alice


# --- accounts ---


async def test_open_account_twice_gives_the_same_account(database: Database) -> None:
    first = await open_account(database, "carol", "earnings", "eur")
    second = await open_account(database, "carol", "earnings", "EUR")
    assert first.id == second.id
    assert first.currency == "EUR"
    assert await count(database, LedgerAccount) == 1


async def test_accounts_differ_by_owner_kind_and_currency(database: Database) -> None:
    ids = {
        (await open_account(database, owner, kind, currency)).id
        for owner in ("a", "b")
        for kind in ("wallet", "earnings")
        for currency in ("USD", "EUR")
    }
    assert len(ids) == 8


async def test_a_kept_as_sum_account_cannot_have_a_floor(database: Database) -> None:
    error = await rejected(
        database,
        lambda s: service.open_account(s, owner="platform", kind="revenue", currency="USD", kept_as_sum=True),
    )
    assert isinstance(error, Unprocessable)
    assert error.field == "may_go_negative"


@pytest.mark.parametrize("currency", ["US", "USDX", "U$D", ""])
async def test_a_currency_is_a_three_letter_code(database: Database, currency: str) -> None:
    error = await rejected(database, lambda s: service.open_account(s, owner="x", kind="wallet", currency=currency))
    assert isinstance(error, Unprocessable)
    assert error.field == "currency"
    assert await count(database, LedgerAccount) == 0


async def test_owner_balances_lists_the_owners_accounts(
    database: Database, funded_alice: LedgerAccount, bob: LedgerAccount
) -> None:
    euros = await open_account(database, "alice", "wallet", "EUR")
    earnings = await open_account(database, "alice", "earnings", "USD")
    async with database.read() as session:
        listed = await service.owner_balances(session, "alice")
    assert [(account.kind, account.currency) for account, _ in listed] == [
        ("earnings", "USD"),
        ("wallet", "EUR"),
        ("wallet", "USD"),
    ]
    assert [account.id for account, _ in listed] == [earnings.id, euros.id, funded_alice.id]
    assert [b.posted for _, b in listed] == [0, 0, 1_000]
    async with database.read() as session:
        assert await service.owner_balances(session, "nobody") == []


async def test_an_unknown_account_is_not_found(database: Database) -> None:
    async with database.read() as session:
        with pytest.raises(NotFound) as caught:
            await service.account_balance(session, 424242)
    assert caught.value.field == "account_id"


# --- journal transactions ---


async def test_transfer_moves_money(database: Database, funded_alice: LedgerAccount, bob: LedgerAccount) -> None:
    transaction = await run(
        database,
        lambda s: service.transfer(
            s, idempotency_key="t1", kind="payment", source=funded_alice, destination=bob, amount=300
        ),
    )
    assert (await balance(database, funded_alice)).posted == 700
    assert (await balance(database, bob)).posted == 300
    async with database.read() as session:
        entries = await service.transaction_entries(session, transaction.id)
    assert sorted((e.account_id, e.amount) for e in entries) == sorted([(funded_alice.id, -300), (bob.id, 300)])
    assert transaction.kind == "payment"
    assert transaction.reverses_id is None


async def test_a_multi_leg_transaction_balances_per_currency(database: Database) -> None:
    usd_a = await open_account(database, "a", currency="USD", may_go_negative=True)
    usd_b = await open_account(database, "b", currency="USD")
    eur_a = await open_account(database, "a", currency="EUR", may_go_negative=True)
    eur_b = await open_account(database, "b", currency="EUR")
    postings = [Posting(usd_a, -100), Posting(usd_b, 100), Posting(eur_a, -90), Posting(eur_b, 90)]
    await run(database, lambda s: service.post_transaction(s, idempotency_key="fx", kind="fx", postings=postings))
    assert [(await balance(database, a)).posted for a in (usd_a, usd_b, eur_a, eur_b)] == [-100, 100, -90, 90]


def _bad_postings(usd: LedgerAccount, usd_2: LedgerAccount, eur: LedgerAccount) -> dict[str, tuple[list[Posting], str]]:
    return {
        "unbalanced": ([Posting(usd, -100), Posting(usd_2, 99)], "postings"),
        "single-posting": ([Posting(usd, 100)], "postings"),
        "no-postings": ([], "postings"),
        "cross-currency-unbalanced": ([Posting(usd, -100), Posting(eur, 100)], "postings"),
        "zero-amount": ([Posting(usd, 0), Posting(usd_2, 0)], "amount"),
        "duplicate-account": ([Posting(usd, -100), Posting(usd, 100)], "postings"),
        "not-an-integer": ([Posting(usd, -1.5), Posting(usd_2, 1.5)], "amount"),  # type: ignore[arg-type]
    }


@pytest.mark.parametrize(
    "case",
    [
        "unbalanced",
        "single-posting",
        "no-postings",
        "cross-currency-unbalanced",
        "zero-amount",
        "duplicate-account",
        "not-an-integer",
    ],
)
async def test_a_malformed_transaction_is_rejected(database: Database, case: str) -> None:
    usd = await open_account(database, "a", currency="USD", may_go_negative=True)
    usd_2 = await open_account(database, "b", currency="USD", may_go_negative=True)
    eur = await open_account(database, "c", currency="EUR", may_go_negative=True)
    postings, field = _bad_postings(usd, usd_2, eur)[case]
    error = await rejected(
        database, lambda s: service.post_transaction(s, idempotency_key="bad", kind="x", postings=postings)
    )
    assert type(error) is Unprocessable
    assert error.field == field
    assert await count(database, LedgerTransaction) == 0
    assert await count(database, LedgerEntry) == 0


@pytest.mark.parametrize("amount", [0, -5])
async def test_a_transfer_amount_must_be_positive(
    database: Database, funded_alice: LedgerAccount, bob: LedgerAccount, amount: int
) -> None:
    error = await rejected(
        database,
        lambda s: service.transfer(
            s, idempotency_key="t", kind="x", source=funded_alice, destination=bob, amount=amount
        ),
    )
    assert type(error) is Unprocessable
    assert error.field == "amount"


async def test_a_transfer_to_the_same_account_is_rejected(database: Database, funded_alice: LedgerAccount) -> None:
    error = await rejected(
        database,
        lambda s: service.transfer(
            s, idempotency_key="t", kind="x", source=funded_alice, destination=funded_alice, amount=1
        ),
    )
    assert type(error) is Unprocessable
    assert error.field == "postings"


async def test_a_posting_is_in_its_accounts_currency(database: Database) -> None:
    source = await open_account(database, "a", currency="eur", may_go_negative=True)
    destination = await open_account(database, "b", currency="Eur")
    transaction = await run(
        database,
        lambda s: service.transfer(s, idempotency_key="t", kind="x", source=source, destination=destination, amount=10),
    )
    async with database.read() as session:
        entries = await service.transaction_entries(session, transaction.id)
    assert [entry.currency for entry in entries] == ["EUR", "EUR"]


async def test_an_idempotent_replay_returns_the_same_transaction(
    database: Database, funded_alice: LedgerAccount, bob: LedgerAccount
) -> None:
    async def pay(session: AsyncSession) -> LedgerTransaction:
        return await service.transfer(
            session,
            idempotency_key="pay-1",
            kind="payment",
            source=funded_alice,
            destination=bob,
            amount=250,
            details={"order": "o-1"},
        )

    first = await run(database, pay)
    second = await run(database, pay)
    assert second.id == first.id
    assert (await balance(database, funded_alice)).posted == 750
    assert (await balance(database, bob)).posted == 250
    assert await count(database, LedgerTransaction) == 2  # the funding and the payment


async def test_a_replay_after_the_money_was_spent_still_returns_the_original(
    database: Database, funded_alice: LedgerAccount, bob: LedgerAccount
) -> None:
    async def pay_all(session: AsyncSession) -> LedgerTransaction:
        return await service.transfer(
            session, idempotency_key="all", kind="payment", source=funded_alice, destination=bob, amount=1_000
        )

    first = await run(database, pay_all)
    assert (await run(database, pay_all)).id == first.id
    assert (await balance(database, funded_alice)).posted == 0


@pytest.mark.parametrize("change", ["amount", "kind", "details", "destination"])
async def test_the_same_key_with_another_payload_is_an_idempotency_conflict(
    database: Database, funded_alice: LedgerAccount, bob: LedgerAccount, change: str
) -> None:
    carol = await open_account(database, "carol")
    original: dict[str, Any] = {"kind": "payment", "destination": bob, "amount": 100, "details": {"n": 1}}
    altered = {**original, change: {"amount": 101, "kind": "refund", "details": {"n": 2}, "destination": carol}[change]}

    def pay(arguments: dict[str, Any]) -> Callable[[AsyncSession], Awaitable[LedgerTransaction]]:
        return lambda s: service.transfer(s, idempotency_key="k", source=funded_alice, **arguments)

    await run(database, pay(original))
    error = await rejected(database, pay(altered))
    assert type(error) is IdempotencyConflict
    assert error.field == "idempotency_key"
    assert (await balance(database, funded_alice)).posted == 900
    assert (await balance(database, carol)).posted == 0


async def test_a_debit_beyond_available_is_insufficient_funds_and_changes_nothing(
    database: Database, funded_alice: LedgerAccount, bob: LedgerAccount
) -> None:
    error = await rejected(
        database,
        lambda s: service.transfer(
            s, idempotency_key="big", kind="payment", source=funded_alice, destination=bob, amount=1_001
        ),
    )
    assert type(error) is InsufficientFunds
    assert error.field == "amount"
    assert (await balance(database, funded_alice)).posted == 1_000
    assert (await balance(database, bob)).posted == 0
    assert await count(database, LedgerTransaction) == 1
    assert await count(database, LedgerEntry) == 2
    # The rejected key was rolled back with the rest: it may be used again.
    await run(
        database,
        lambda s: service.transfer(
            s, idempotency_key="big", kind="payment", source=funded_alice, destination=bob, amount=1_000
        ),
    )
    assert (await balance(database, funded_alice)).posted == 0


async def test_the_floor_counts_reserved_money(
    database: Database, funded_alice: LedgerAccount, bob: LedgerAccount
) -> None:
    await run(
        database,
        lambda s: service.reserve(
            s, idempotency_key="h", kind="payout", source=funded_alice, destination=bob, amount=600
        ),
    )
    error = await rejected(
        database,
        lambda s: service.transfer(
            s, idempotency_key="t", kind="payment", source=funded_alice, destination=bob, amount=401
        ),
    )
    assert type(error) is InsufficientFunds


async def test_allow_overdraft_lets_a_floored_account_go_negative(
    database: Database, funded_alice: LedgerAccount, bob: LedgerAccount
) -> None:
    await run(
        database,
        lambda s: service.transfer(
            s,
            idempotency_key="clawback",
            kind="clawback",
            source=funded_alice,
            destination=bob,
            amount=1_500,
            allow_overdraft=True,
        ),
    )
    assert (await balance(database, funded_alice)).available == -500
    # Once negative, an ordinary debit is refused; a credit is fine.
    error = await rejected(
        database,
        lambda s: service.transfer(
            s, idempotency_key="more", kind="payment", source=funded_alice, destination=bob, amount=1
        ),
    )
    assert type(error) is InsufficientFunds
    await fund(database, funded_alice, 200, "top-up")
    assert (await balance(database, funded_alice)).posted == -300


async def test_an_account_that_may_go_negative_has_no_floor(database: Database, bob: LedgerAccount) -> None:
    house = await open_account(database, "house", may_go_negative=True)
    await run(
        database,
        lambda s: service.transfer(s, idempotency_key="t", kind="x", source=house, destination=bob, amount=5),
    )
    assert (await balance(database, house)).posted == -5


# --- holds ---


async def reserve(
    database: Database, source: LedgerAccount, destination: LedgerAccount, amount: int, key: str = "hold-1"
) -> LedgerHold:
    return await run(
        database,
        lambda s: service.reserve(
            s, idempotency_key=key, kind="payout", source=source, destination=destination, amount=amount
        ),
    )


async def test_reserve_reduces_available_but_not_posted(
    database: Database, funded_alice: LedgerAccount, bob: LedgerAccount
) -> None:
    hold = await reserve(database, funded_alice, bob, 400)
    assert hold.status == service.HOLD_PENDING
    assert (await balance(database, funded_alice)) == Balance(funded_alice.id, "USD", 1_000, 400, 0)
    assert (await balance(database, funded_alice)).available == 600
    assert (await balance(database, bob)) == Balance(bob.id, "USD", 0, 0, 400)


async def test_reserve_beyond_available_is_insufficient_funds(
    database: Database, funded_alice: LedgerAccount, bob: LedgerAccount
) -> None:
    await reserve(database, funded_alice, bob, 700, key="first")
    error = await rejected(
        database,
        lambda s: service.reserve(
            s, idempotency_key="second", kind="payout", source=funded_alice, destination=bob, amount=301
        ),
    )
    assert type(error) is InsufficientFunds
    assert (await balance(database, funded_alice)).pending_debits == 700
    assert await count(database, LedgerHold) == 1


@pytest.mark.parametrize(
    ("amount", "destination", "field"),
    [(0, "bob", "amount"), (-1, "bob", "amount"), (10, "self", "destination"), (10, "euro", "destination")],
)
async def test_a_malformed_hold_is_rejected(
    database: Database, funded_alice: LedgerAccount, bob: LedgerAccount, amount: int, destination: str, field: str
) -> None:
    euro = await open_account(database, "bob", currency="EUR")
    target = {"bob": bob, "self": funded_alice, "euro": euro}[destination]
    error = await rejected(
        database,
        lambda s: service.reserve(
            s, idempotency_key="h", kind="payout", source=funded_alice, destination=target, amount=amount
        ),
    )
    assert type(error) is Unprocessable
    assert error.field == field
    assert await count(database, LedgerHold) == 0


async def test_a_reserve_replay_returns_the_same_hold_and_another_payload_conflicts(
    database: Database, funded_alice: LedgerAccount, bob: LedgerAccount
) -> None:
    first = await reserve(database, funded_alice, bob, 100)
    assert (await reserve(database, funded_alice, bob, 100)).id == first.id
    assert (await balance(database, funded_alice)).pending_debits == 100
    error = await rejected(
        database,
        lambda s: service.reserve(
            s, idempotency_key="hold-1", kind="payout", source=funded_alice, destination=bob, amount=101
        ),
    )
    assert type(error) is IdempotencyConflict
    assert error.field == "idempotency_key"


async def test_posting_a_hold_in_full_moves_the_money(
    database: Database, funded_alice: LedgerAccount, bob: LedgerAccount
) -> None:
    hold = await reserve(database, funded_alice, bob, 400)
    transaction = await run(database, lambda s: service.post_hold(s, hold.id))
    assert transaction.hold_id == hold.id
    assert (await balance(database, funded_alice)) == Balance(funded_alice.id, "USD", 600, 0, 0)
    assert (await balance(database, bob)) == Balance(bob.id, "USD", 400, 0, 0)
    async with database.read() as session:
        stored = await session.get(LedgerHold, hold.id)
    assert stored is not None
    assert (stored.status, stored.posted_amount) == (service.HOLD_POSTED, 400)
    assert stored.resolved_at is not None


async def test_posting_part_of_a_hold_releases_the_rest(
    database: Database, funded_alice: LedgerAccount, bob: LedgerAccount
) -> None:
    hold = await reserve(database, funded_alice, bob, 400)
    await run(database, lambda s: service.post_hold(s, hold.id, amount=150))
    assert (await balance(database, funded_alice)) == Balance(funded_alice.id, "USD", 850, 0, 0)
    assert (await balance(database, bob)) == Balance(bob.id, "USD", 150, 0, 0)


async def test_posting_twice_with_the_same_amount_returns_the_same_transaction(
    database: Database, funded_alice: LedgerAccount, bob: LedgerAccount
) -> None:
    hold = await reserve(database, funded_alice, bob, 400)
    first = await run(database, lambda s: service.post_hold(s, hold.id, amount=150))
    second = await run(database, lambda s: service.post_hold(s, hold.id, amount=150))
    assert second.id == first.id
    assert (await balance(database, funded_alice)).posted == 850
    error = await rejected(database, lambda s: service.post_hold(s, hold.id, amount=151))
    assert type(error) is Conflict
    assert error.field == "amount"
    error = await rejected(database, lambda s: service.post_hold(s, hold.id))  # "all" is 400, not 150
    assert type(error) is Conflict


@pytest.mark.parametrize("amount", [0, -1, 401])
async def test_posting_outside_the_reserved_amount_is_rejected(
    database: Database, funded_alice: LedgerAccount, bob: LedgerAccount, amount: int
) -> None:
    hold = await reserve(database, funded_alice, bob, 400)
    error = await rejected(database, lambda s: service.post_hold(s, hold.id, amount=amount))
    assert type(error) is Unprocessable
    assert error.field == "amount"
    assert (await balance(database, funded_alice)) == Balance(funded_alice.id, "USD", 1_000, 400, 0)


async def test_void_releases_the_hold_and_voiding_twice_is_fine(
    database: Database, funded_alice: LedgerAccount, bob: LedgerAccount
) -> None:
    hold = await reserve(database, funded_alice, bob, 400)
    voided = await run(database, lambda s: service.void_hold(s, hold.id))
    assert voided.status == service.HOLD_VOIDED
    again = await run(database, lambda s: service.void_hold(s, hold.id))
    assert (again.id, again.status) == (hold.id, service.HOLD_VOIDED)
    assert (await balance(database, funded_alice)) == Balance(funded_alice.id, "USD", 1_000, 0, 0)
    assert (await balance(database, bob)) == Balance(bob.id, "USD", 0, 0, 0)
    assert await count(database, LedgerTransaction) == 1  # only the funding


async def test_void_after_post_and_post_after_void_conflict(
    database: Database, funded_alice: LedgerAccount, bob: LedgerAccount
) -> None:
    posted = await reserve(database, funded_alice, bob, 100, key="posted")
    voided = await reserve(database, funded_alice, bob, 100, key="voided")
    await run(database, lambda s: service.post_hold(s, posted.id))
    await run(database, lambda s: service.void_hold(s, voided.id))
    error = await rejected(database, lambda s: service.void_hold(s, posted.id))
    assert type(error) is Conflict
    assert error.field == "hold_id"
    error = await rejected(database, lambda s: service.post_hold(s, voided.id))
    assert type(error) is Conflict
    assert error.field == "hold_id"
    assert (await balance(database, funded_alice)) == Balance(funded_alice.id, "USD", 900, 0, 0)
    assert (await balance(database, bob)) == Balance(bob.id, "USD", 100, 0, 0)


async def test_an_unknown_hold_is_not_found(database: Database) -> None:
    for error in (
        await rejected(database, lambda s: service.void_hold(s, 424242)),
        await rejected(database, lambda s: service.post_hold(s, 424242)),
    ):
        assert type(error) is NotFound
        assert error.field == "hold_id"


async def test_a_callers_key_cannot_take_a_holds_posting_key(
    database: Database, funded_alice: LedgerAccount, bob: LedgerAccount
) -> None:
    hold = await reserve(database, funded_alice, bob, 100)
    error = await rejected(
        database,
        lambda s: service.transfer(
            s, idempotency_key=f"hold:{hold.id}:post", kind="x", source=funded_alice, destination=bob, amount=1
        ),
    )
    assert type(error) is Unprocessable
    assert error.field == "idempotency_key"
    await run(database, lambda s: service.post_hold(s, hold.id))
    assert (await balance(database, bob)).posted == 100


# --- reversals ---


async def test_a_reversal_mirrors_and_links_the_transaction(
    database: Database, funded_alice: LedgerAccount, bob: LedgerAccount
) -> None:
    payment = await run(
        database,
        lambda s: service.transfer(
            s, idempotency_key="pay", kind="payment", source=funded_alice, destination=bob, amount=300
        ),
    )
    reversal = await run(database, lambda s: service.reverse_transaction(s, payment.id, idempotency_key="rev"))
    assert reversal.reverses_id == payment.id
    assert reversal.kind == "reversal:payment"
    assert (await balance(database, funded_alice)).posted == 1_000
    assert (await balance(database, bob)).posted == 0
    async with database.read() as session:
        entries = await service.transaction_entries(session, reversal.id)
    assert sorted((e.account_id, e.amount) for e in entries) == sorted([(funded_alice.id, 300), (bob.id, -300)])

    same = await run(database, lambda s: service.reverse_transaction(s, payment.id, idempotency_key="rev"))
    assert same.id == reversal.id
    error = await rejected(database, lambda s: service.reverse_transaction(s, payment.id, idempotency_key="rev-2"))
    assert type(error) is Conflict
    assert error.field == "transaction_id"
    error = await rejected(database, lambda s: service.reverse_transaction(s, reversal.id, idempotency_key="rev-3"))
    assert type(error) is Conflict
    assert error.field == "transaction_id"
    assert (await balance(database, funded_alice)).posted == 1_000
    assert await count(database, LedgerTransaction) == 3


async def test_a_reversal_respects_the_floor_unless_overdraft_is_allowed(
    database: Database, funded_alice: LedgerAccount, bob: LedgerAccount
) -> None:
    carol = await open_account(database, "carol")
    payment = await run(
        database,
        lambda s: service.transfer(
            s, idempotency_key="pay", kind="payment", source=funded_alice, destination=bob, amount=300
        ),
    )
    await run(
        database,
        lambda s: service.transfer(
            s, idempotency_key="spend", kind="payment", source=bob, destination=carol, amount=200
        ),
    )
    error = await rejected(database, lambda s: service.reverse_transaction(s, payment.id, idempotency_key="rev"))
    assert type(error) is InsufficientFunds
    assert (await balance(database, bob)).posted == 100
    await run(
        database,
        lambda s: service.reverse_transaction(s, payment.id, idempotency_key="rev", allow_overdraft=True),
    )
    assert (await balance(database, bob)).posted == -200


async def test_reversing_an_unknown_transaction_is_not_found(database: Database) -> None:
    error = await rejected(database, lambda s: service.reverse_transaction(s, 424242, idempotency_key="r"))
    assert type(error) is NotFound


async def test_a_reversal_key_used_elsewhere_is_an_idempotency_conflict(
    database: Database, funded_alice: LedgerAccount, bob: LedgerAccount
) -> None:
    payment = await run(
        database,
        lambda s: service.transfer(
            s, idempotency_key="pay", kind="payment", source=funded_alice, destination=bob, amount=300
        ),
    )
    error = await rejected(database, lambda s: service.reverse_transaction(s, payment.id, idempotency_key="pay"))
    assert type(error) is IdempotencyConflict


# --- platform-wide accounts kept as a sum ---


async def transfer(
    database: Database, key: str, source: LedgerAccount, destination: LedgerAccount, amount: int
) -> LedgerTransaction:
    return await run(
        database,
        lambda s: service.transfer(
            s, idempotency_key=key, kind="sale", source=source, destination=destination, amount=amount
        ),
    )


async def test_a_kept_as_sum_account_is_the_sum_of_its_entries_and_no_hot_row(
    database: Database, bob: LedgerAccount
) -> None:
    revenue = await open_account(database, "platform", "revenue", may_go_negative=True, kept_as_sum=True)
    for number, amount in enumerate((100, 250, 40)):
        await transfer(database, f"sale-{number}", revenue, bob, amount)
    hold = await run(
        database,
        lambda s: service.reserve(s, idempotency_key="h", kind="payout", source=revenue, destination=bob, amount=60),
    )
    await run(
        database,
        lambda s: service.reserve(s, idempotency_key="h2", kind="payout", source=bob, destination=revenue, amount=15),
    )
    assert await balance(database, revenue) == Balance(revenue.id, "USD", -390, 60, 15)
    await run(database, lambda s: service.post_hold(s, hold.id, amount=10))
    assert await balance(database, revenue) == Balance(revenue.id, "USD", -400, 0, 15)
    async with database.read() as session:
        row = (
            await session.execute(
                sa.select(LedgerAccount.posted, LedgerAccount.pending_debits, LedgerAccount.pending_credits).where(
                    LedgerAccount.id == revenue.id
                )
            )
        ).one()
        summed = await session.scalar(
            sa.select(sa.func.sum(LedgerEntry.amount)).where(LedgerEntry.account_id == revenue.id)
        )
    assert tuple(row) == (0, 0, 0)
    assert summed == -400
    assert (await balance(database, bob)) == Balance(bob.id, "USD", 400, 15, 0)


@pytest.mark.parametrize(("key", "kind", "field"), [("k" * 201, "t", "idempotency_key"), ("k", "x" * 65, "kind")])
async def test_over_long_keys_and_kinds_are_refused_on_both_engines(
    database: Database, key: str, kind: str, field: str
) -> None:
    async with database.write() as session:
        source = await service.open_account(
            session, owner="platform", kind="expense", currency="USD", may_go_negative=True
        )
        destination = await service.open_account(session, owner="partner:1", kind="wallet", currency="USD")
    with pytest.raises(Unprocessable) as caught:
        async with database.write() as session:
            await service.transfer(
                session, idempotency_key=key, kind=kind, source=source, destination=destination, amount=1
            )
    assert caught.value.field == field
    with pytest.raises(Unprocessable) as caught:
        async with database.write() as session:
            await service.reserve(
                session, idempotency_key=key, kind=kind, source=destination, destination=source, amount=1
            )
    assert caught.value.field == field


async def test_a_boolean_is_not_an_amount(database: Database) -> None:
    async with database.write() as session:
        source = await service.open_account(session, owner="partner:1", kind="wallet", currency="USD")
        destination = await service.open_account(
            session, owner="platform", kind="clearing", currency="USD", may_go_negative=True
        )
    with pytest.raises(Unprocessable):
        async with database.write() as session:
            await service.reserve(
                session, idempotency_key="h", kind="payout", source=source, destination=destination, amount=True
            )
