"""The ledger: the only code that changes balances.

Rules (see DESIGN.md "Money"):
- a journal transaction has >= 2 postings, on distinct accounts, summing to zero per currency; each
  posting is in its account's currency; transactions and entries are append-only;
- every transaction and hold has an idempotency key: same key + same payload returns the original,
  same key + another payload raises IdempotencyConflict;
- an account that may not go negative rejects a debit that would take `available` below zero, unless
  the caller says `allow_overdraft` (clawbacks: a refund after payout must go through and leaves the
  balance negative);
- holds: reserve -> post (<= reserved; the rest released) or void, each exactly once;
- a transaction is reversed at most once (unique `reverses_id`).

Concurrency: balance rows are changed with `UPDATE ... RETURNING` in ascending account id order, so
on PostgreSQL the row locks are always taken in the same order (no deadlocks) and the floor is checked
against the locked, current value. On SQLite the write transaction is serialised (`BEGIN IMMEDIATE`). Accounts
`kept_as_sum` (platform-wide) are never updated: their balance is the sum of their entries, so they are no
hot row. Nothing here commits: an error leaves the caller to roll the whole unit of work back.

Credits at commit: `post_each` (the purchase path) writes its entries at once but adds its credits to their balance
rows when the unit of work commits (`ledger.listeners`), all of the transaction's together, in account id
order. An upline partner is paid on every sale of its network, so its balance row is the hottest row of the
platform: locked from mid-transaction to the commit, concurrent sales queued behind each other for the whole
rest of each other's work (benchmark 4: seconds of p99); now they wait for the commit only. A unit of work
that reads or changes a balance row itself after such a posting (the demo loader records a purchase and its
refund in one) applies its deferred credits first, so it always sees its own credits.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from partners.db import bulk, pipeline
from partners.db.session import dialect_insert, dialect_name
from partners.db.types import utcnow
from partners.kit.errors import Conflict, IdempotencyConflict, InsufficientFunds, NotFound, Unprocessable
from partners.ledger.models import LedgerAccount, LedgerEntry, LedgerHold, LedgerTransaction
from partners.ledger.schemas import AccountRef, Balance, NewTransaction, Posting

MAX_KEY_LENGTH = 200
MAX_KIND_LENGTH = 64
HOLD_PENDING = "pending"
HOLD_POSTED = "posted"
HOLD_VOIDED = "voided"
HOLD_POSTING_KEY_PREFIX = "hold:"  # post_hold writes its transaction under "hold:<id>:post"
DEFERRED_CREDITS_KEY = "partners.ledger.deferred_credits"  # session.info: account id -> credits to add at commit

_accounts = cast(sa.Table, LedgerAccount.__table__)
_transactions = cast(sa.Table, LedgerTransaction.__table__)
_holds = cast(sa.Table, LedgerHold.__table__)
_entries = cast(sa.Table, LedgerEntry.__table__)


def payload_hash(payload: dict[str, Any]) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


# --- accounts ---


async def open_account(
    session: AsyncSession,
    *,
    owner: str,
    kind: str,
    currency: str,
    may_go_negative: bool = False,
    kept_as_sum: bool = False,
) -> LedgerAccount:
    """The account for (owner, kind, currency), created on first use. Safe under concurrent first use."""
    currency = currency.upper()
    if len(currency) != 3 or not (currency.isascii() and currency.isalpha()):
        raise Unprocessable("a currency is a three-letter ISO-4217 code", field="currency")
    if kept_as_sum and not may_go_negative:
        raise Unprocessable("an account kept as a sum cannot have a floor", field="may_go_negative")
    found = await find_account(session, owner=owner, kind=kind, currency=currency)
    if found is not None:
        return found
    statement = (
        dialect_insert(session, _accounts)
        .on_conflict_do_nothing()
        .values(
            owner=owner,
            kind=kind,
            currency=currency,
            may_go_negative=may_go_negative,
            kept_as_sum=kept_as_sum,
            posted=0,
            pending_debits=0,
            pending_credits=0,
            created_at=utcnow(),
        )
    )
    await session.execute(statement)
    created = await find_account(session, owner=owner, kind=kind, currency=currency)
    assert created is not None
    return created


async def find_account(session: AsyncSession, *, owner: str, kind: str, currency: str) -> LedgerAccount | None:
    result = await session.execute(
        sa.select(LedgerAccount).where(
            LedgerAccount.owner == owner,
            LedgerAccount.kind == kind,
            LedgerAccount.currency == currency.upper(),
        )
    )
    return result.scalar_one_or_none()


async def find_accounts(
    session: AsyncSession, keys: Sequence[tuple[str, str, str]]
) -> dict[tuple[str, str, str], LedgerAccount]:
    """Several accounts in one query, by (owner, kind, currency); those that do not exist are left out."""
    wanted = [(owner, kind, currency.upper()) for owner, kind, currency in keys]
    if not wanted:
        return {}
    result = await session.scalars(
        sa.select(LedgerAccount).where(
            sa.tuple_(LedgerAccount.owner, LedgerAccount.kind, LedgerAccount.currency).in_(wanted)
        )
    )
    return {(account.owner, account.kind, account.currency): account for account in result}


async def get_account(session: AsyncSession, account_id: int) -> LedgerAccount:
    account = await session.get(LedgerAccount, account_id)
    if account is None:
        raise NotFound(f"ledger account {account_id} not found", field="account_id")
    return account


# Built once: `_change_balance` runs for every leg of every transaction.
_CHANGE_BALANCE = (
    sa.update(_accounts)
    .where(_accounts.c.id == sa.bindparam("account_id"))
    .values(
        posted=_accounts.c.posted + sa.bindparam("d_posted"),
        pending_debits=_accounts.c.pending_debits + sa.bindparam("d_pending_debits"),
        pending_credits=_accounts.c.pending_credits + sa.bindparam("d_pending_credits"),
    )
    .returning(_accounts.c.posted, _accounts.c.pending_debits)
)


async def _change_balance(
    session: AsyncSession,
    account: LedgerAccount | AccountRef,
    *,
    posted: int = 0,
    pending_debits: int = 0,
    pending_credits: int = 0,
    enforce_floor: bool,
) -> None:
    """Apply deltas to a balance row (taking its lock) and check the floor against the new value."""
    if account.kept_as_sum:
        return
    await _settle(session)
    result = await session.execute(
        _CHANGE_BALANCE,
        {
            "account_id": account.id,
            "d_posted": posted,
            "d_pending_debits": pending_debits,
            "d_pending_credits": pending_credits,
        },
    )
    new_posted, new_pending_debits = result.one()
    if enforce_floor and not account.may_go_negative and new_posted - new_pending_debits < 0:
        available_before = new_posted - new_pending_debits - posted + pending_debits
        raise InsufficientFunds(
            f"account {account.id} ({account.kind}, {account.currency}) has {available_before} available",
            field="amount",
        )


# --- journal transactions ---


def _validate_labels(idempotency_key: str, kind: str) -> None:
    """The same limits on both engines (SQLite would store an over-long value PostgreSQL refuses)."""
    if not 0 < len(idempotency_key) <= MAX_KEY_LENGTH:
        raise Unprocessable(f"an idempotency key has 1 to {MAX_KEY_LENGTH} characters", field="idempotency_key")
    if not 0 < len(kind) <= MAX_KIND_LENGTH:
        raise Unprocessable(f"a kind has 1 to {MAX_KIND_LENGTH} characters", field="kind")


def _validate_postings(postings: Sequence[Posting]) -> None:
    if len(postings) < 2:
        raise Unprocessable("a transaction needs at least two postings", field="postings")
    account_ids = [posting.account.id for posting in postings]
    if len(set(account_ids)) != len(account_ids):
        raise Unprocessable("each account may appear once in a transaction", field="postings")
    sums: dict[str, int] = defaultdict(int)
    for posting in postings:
        if not isinstance(posting.amount, int) or isinstance(posting.amount, bool) or posting.amount == 0:
            raise Unprocessable("a posting amount is a non-zero integer of minor units", field="amount")
        sums[posting.account.currency] += posting.amount
    unbalanced = {currency: total for currency, total in sums.items() if total != 0}
    if unbalanced:
        raise Unprocessable(f"postings do not sum to zero per currency: {unbalanced}", field="postings")


def _transaction_payload(kind: str, postings: Sequence[Posting], details: dict[str, Any]) -> dict[str, Any]:
    legs = sorted((posting.account.id, posting.amount) for posting in postings)
    return {"kind": kind, "postings": legs, "details": details}


async def _existing_transaction(session: AsyncSession, idempotency_key: str, digest: str) -> LedgerTransaction:
    result = await session.execute(
        sa.select(LedgerTransaction).where(LedgerTransaction.idempotency_key == idempotency_key)
    )
    existing = result.scalar_one_or_none()
    if existing is None:
        raise Conflict(
            "this transaction conflicts with another one (it reverses an already reversed transaction)",
            field="transaction_id",
        )
    if existing.payload_hash != digest:
        raise IdempotencyConflict(
            f"idempotency key {idempotency_key!r} was used for another transaction", field="idempotency_key"
        )
    return existing


def _checked_digest(idempotency_key: str, kind: str, postings: Sequence[Posting], details: dict[str, Any]) -> str:
    if idempotency_key.startswith(HOLD_POSTING_KEY_PREFIX):
        raise Unprocessable("idempotency keys starting with 'hold:' are the ledger's", field="idempotency_key")
    _validate_labels(idempotency_key, kind)
    _validate_postings(postings)
    return payload_hash(_transaction_payload(kind, postings, details))


async def _write_legs(
    session: AsyncSession,
    transactions: Sequence[tuple[int, Sequence[Posting]]],
    *,
    allow_overdraft: bool,
    credits_at_commit: bool = False,
) -> None:
    """The entries of new transactions (id, postings), in one INSERT, and their balance rows (locked in
    ascending account id order)."""
    if not transactions:
        return
    rows = [
        {
            "transaction_id": transaction_id,
            "account_id": posting.account.id,
            "currency": posting.account.currency,
            "amount": posting.amount,
        }
        for transaction_id, postings in transactions
        for posting in postings
    ]
    await _insert_entries(session, rows)
    legs = sorted((posting for _, postings in transactions for posting in postings), key=lambda p: p.account.id)
    for posting in legs:
        if credits_at_commit and posting.amount > 0 and not posting.account.kept_as_sum:
            deferred: dict[int, int] = session.sync_session.info.setdefault(DEFERRED_CREDITS_KEY, {})
            deferred[posting.account.id] = deferred.get(posting.account.id, 0) + posting.amount
            continue
        await _change_balance(
            session,
            posting.account,
            posted=posting.amount,
            enforce_floor=posting.amount < 0 and not allow_overdraft,
        )


async def _insert_entries(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    entries = bulk.insert(dialect_name(session), _entries, rows)
    await pipeline.run_later(session, entries.statement, entries.parameters)


def apply_deferred_credits(session: Session) -> None:
    """Add the credits `post_each` deferred to their balance rows, locked in account id order, in one statement: at
    commit (`ledger.listeners`), or before the unit of work reads or debits a balance row itself (`_settle`). A
    credit cannot break a floor, so nothing is checked."""
    deferred: dict[int, int] = session.info.pop(DEFERRED_CREDITS_KEY, {})
    if deferred:
        rows = [{"id": key, "posted": deferred[key]} for key in sorted(deferred)]
        credits = bulk.update(dialect_name(session), _accounts, rows, add=("posted",))
        pipeline.run_later_in(session, credits.statement, credits.parameters)


async def post_transaction(
    session: AsyncSession,
    *,
    idempotency_key: str,
    kind: str,
    postings: Sequence[Posting],
    description: str = "",
    details: dict[str, Any] | None = None,
    allow_overdraft: bool = False,
    reverses_id: int | None = None,
    hold_id: int | None = None,
) -> LedgerTransaction:
    """Write one balanced journal transaction, or return the one already written under this key."""
    details = details or {}
    digest = _checked_digest(idempotency_key, kind, postings, details)
    # RETURNING the row as the ORM object: no SELECT after the INSERT.
    transaction: LedgerTransaction | None = await session.scalar(
        dialect_insert(session, LedgerTransaction)
        .on_conflict_do_nothing()
        .values(
            idempotency_key=idempotency_key,
            payload_hash=digest,
            kind=kind,
            description=description,
            details=details,
            reverses_id=reverses_id,
            hold_id=hold_id,
            created_at=utcnow(),
        )
        .returning(LedgerTransaction)
    )
    if transaction is None:
        return await _existing_transaction(session, idempotency_key, digest)
    await _write_legs(session, [(transaction.id, postings)], allow_overdraft=allow_overdraft)
    return transaction


async def post_each(session: AsyncSession, transactions: Sequence[NewTransaction]) -> list[int]:
    """`post_transaction` for the hot path (the commissions of a batch of purchases): the same rules and
    idempotency, but one INSERT for all the transactions and one for all their entries, the new ids as the answer
    (in the order given) instead of ORM objects, and the credits added to their balance rows at commit (see the
    module's docstring). Inside a savepoint the credits are applied at once, like `post_transaction`'s."""
    if not transactions:
        return []
    keys = [transaction.idempotency_key for transaction in transactions]
    if len(set(keys)) != len(keys):
        raise Unprocessable("each transaction of one call needs its own idempotency key", field="idempotency_key")
    digests = [_checked_digest(t.idempotency_key, t.kind, t.postings, t.details) for t in transactions]
    created_at = utcnow()
    rows = [
        {
            "idempotency_key": transaction.idempotency_key,
            "payload_hash": digest,
            "kind": transaction.kind,
            "description": transaction.description,
            "details": transaction.details,
            "created_at": created_at,
        }
        for transaction, digest in zip(transactions, digests, strict=True)
    ]
    insert = bulk.insert(
        dialect_name(session), _transactions, rows, skip_conflicts=True, returning=("id", "idempotency_key")
    )
    inserted = await session.execute(insert.statement, insert.parameters)
    new_ids: dict[str, int] = {key: int(transaction_id) for transaction_id, key in inserted.all()}
    ids: list[int] = []
    for transaction, digest in zip(transactions, digests, strict=True):
        new_id = new_ids.get(transaction.idempotency_key)
        if new_id is None:  # written before under this key
            new_id = (await _existing_transaction(session, transaction.idempotency_key, digest)).id
        ids.append(new_id)
    written = [(new_ids[t.idempotency_key], t.postings) for t in transactions if t.idempotency_key in new_ids]
    at_commit = session.sync_session.get_nested_transaction() is None
    await _write_legs(session, written, allow_overdraft=False, credits_at_commit=at_commit)
    return ids


async def transfer(
    session: AsyncSession,
    *,
    idempotency_key: str,
    kind: str,
    source: LedgerAccount,
    destination: LedgerAccount,
    amount: int,
    description: str = "",
    details: dict[str, Any] | None = None,
    allow_overdraft: bool = False,
) -> LedgerTransaction:
    if amount <= 0:
        raise Unprocessable("a transfer amount must be positive", field="amount")
    return await post_transaction(
        session,
        idempotency_key=idempotency_key,
        kind=kind,
        postings=[Posting(source, -amount), Posting(destination, amount)],
        description=description,
        details=details,
        allow_overdraft=allow_overdraft,
    )


async def transaction_entries(session: AsyncSession, transaction_id: int) -> list[LedgerEntry]:
    result = await session.execute(
        sa.select(LedgerEntry).where(LedgerEntry.transaction_id == transaction_id).order_by(LedgerEntry.id)
    )
    return list(result.scalars())


async def reverse_transaction(
    session: AsyncSession,
    transaction_id: int,
    *,
    idempotency_key: str,
    description: str = "",
    allow_overdraft: bool = False,
) -> LedgerTransaction:
    """Post the mirror image of a transaction, linked to it. A transaction is reversed at most once."""
    original = await session.get(LedgerTransaction, transaction_id)
    if original is None:
        raise NotFound(f"transaction {transaction_id} not found", field="transaction_id")
    if original.reverses_id is not None:
        raise Conflict("a reversal cannot itself be reversed", field="transaction_id")
    entries = await transaction_entries(session, transaction_id)
    accounts = {entry.account_id: await get_account(session, entry.account_id) for entry in entries}
    postings = [Posting(accounts[entry.account_id], -entry.amount) for entry in entries]
    return await post_transaction(
        session,
        idempotency_key=idempotency_key,
        kind=f"reversal:{original.kind}"[:64],
        postings=postings,
        description=description or f"reversal of transaction {transaction_id}",
        details={"reverses": transaction_id},
        allow_overdraft=allow_overdraft,
        reverses_id=transaction_id,
    )


# --- holds ---


async def reserve(
    session: AsyncSession,
    *,
    idempotency_key: str,
    kind: str,
    source: LedgerAccount,
    destination: LedgerAccount,
    amount: int,
    details: dict[str, Any] | None = None,
) -> LedgerHold:
    """Reserve `amount` from `source` towards `destination` (phase one of a two-phase transfer)."""
    _validate_labels(idempotency_key, kind)
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise Unprocessable("a hold amount must be a positive integer of minor units", field="amount")
    if source.id == destination.id:
        raise Unprocessable("a hold needs two different accounts", field="destination")
    if source.currency != destination.currency:
        raise Unprocessable("a hold cannot cross currencies", field="destination")
    details = details or {}
    digest = payload_hash(
        {
            "kind": kind,
            "source": source.id,
            "destination": destination.id,
            "amount": amount,
            "details": details,
        }
    )
    inserted = await session.execute(
        dialect_insert(session, _holds)
        .on_conflict_do_nothing()
        .values(
            idempotency_key=idempotency_key,
            payload_hash=digest,
            kind=kind,
            debit_account_id=source.id,
            credit_account_id=destination.id,
            currency=source.currency,
            amount=amount,
            status=HOLD_PENDING,
            posted_amount=0,
            details=details,
            created_at=utcnow(),
        )
        .returning(_holds.c.id)
    )
    hold_id = inserted.scalar_one_or_none()
    if hold_id is None:
        return await _existing_hold(session, idempotency_key, digest)
    for account in sorted((source, destination), key=lambda a: a.id):
        if account.id == source.id:
            await _change_balance(session, account, pending_debits=amount, enforce_floor=True)
        else:
            await _change_balance(session, account, pending_credits=amount, enforce_floor=False)
    hold = await session.get(LedgerHold, hold_id)
    assert hold is not None
    return hold


async def _existing_hold(session: AsyncSession, idempotency_key: str, digest: str) -> LedgerHold:
    result = await session.execute(sa.select(LedgerHold).where(LedgerHold.idempotency_key == idempotency_key))
    existing = result.scalar_one()
    if existing.payload_hash != digest:
        raise IdempotencyConflict(
            f"idempotency key {idempotency_key!r} was used for another hold", field="idempotency_key"
        )
    return existing


async def _lock_hold(session: AsyncSession, hold_id: int) -> LedgerHold:
    result = await session.execute(
        sa.select(LedgerHold)
        .where(LedgerHold.id == hold_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    hold = result.scalar_one_or_none()
    if hold is None:
        raise NotFound(f"hold {hold_id} not found", field="hold_id")
    return hold


async def _release_hold(session: AsyncSession, hold: LedgerHold, *, posted_amount: int) -> None:
    source = await get_account(session, hold.debit_account_id)
    destination = await get_account(session, hold.credit_account_id)
    for account in sorted((source, destination), key=lambda a: a.id):
        if account.id == source.id:
            await _change_balance(
                session, account, pending_debits=-hold.amount, posted=-posted_amount, enforce_floor=False
            )
        else:
            await _change_balance(
                session, account, pending_credits=-hold.amount, posted=posted_amount, enforce_floor=False
            )


async def post_hold(session: AsyncSession, hold_id: int, *, amount: int | None = None) -> LedgerTransaction:
    """Phase two: move `amount` (default: all) of the reserved sum; the rest is released. Once only."""
    hold = await _lock_hold(session, hold_id)
    amount = hold.amount if amount is None else amount
    posting_key = f"{HOLD_POSTING_KEY_PREFIX}{hold.id}:post"
    if hold.status == HOLD_POSTED:
        if amount != hold.posted_amount:
            raise Conflict(f"hold {hold_id} was already posted for {hold.posted_amount}", field="amount")
        result = await session.execute(
            sa.select(LedgerTransaction).where(LedgerTransaction.idempotency_key == posting_key)
        )
        return result.scalar_one()
    if hold.status == HOLD_VOIDED:
        raise Conflict(f"hold {hold_id} was voided", field="hold_id")
    if not isinstance(amount, int) or not 0 < amount <= hold.amount:
        raise Unprocessable(f"post amount must be between 1 and the reserved {hold.amount}", field="amount")
    source = await get_account(session, hold.debit_account_id)
    destination = await get_account(session, hold.credit_account_id)
    postings = [Posting(source, -amount), Posting(destination, amount)]
    _validate_postings(postings)
    details = {"hold": hold.id, **hold.details}
    inserted = await session.execute(
        sa.insert(_transactions)
        .values(
            idempotency_key=posting_key,
            payload_hash=payload_hash(_transaction_payload(hold.kind, postings, details)),
            kind=hold.kind,
            description=f"posting of hold {hold.id}",
            details=details,
            hold_id=hold.id,
            created_at=utcnow(),
        )
        .returning(_transactions.c.id)
    )
    transaction_id = inserted.scalar_one()
    await _insert_entries(
        session,
        [
            {
                "transaction_id": transaction_id,
                "account_id": leg.account.id,
                "currency": hold.currency,
                "amount": leg.amount,
            }
            for leg in postings
        ],
    )
    await _release_hold(session, hold, posted_amount=amount)
    hold.status = HOLD_POSTED
    hold.posted_amount = amount
    hold.resolved_at = utcnow()
    await session.flush()
    transaction = await session.get(LedgerTransaction, transaction_id)
    assert transaction is not None
    return transaction


async def void_hold(session: AsyncSession, hold_id: int) -> LedgerHold:
    """Release the whole reservation. Voiding a voided hold is a no-op; a posted hold cannot be voided."""
    hold = await _lock_hold(session, hold_id)
    if hold.status == HOLD_VOIDED:
        return hold
    if hold.status == HOLD_POSTED:
        raise Conflict(f"hold {hold_id} was already posted", field="hold_id")
    await _release_hold(session, hold, posted_amount=0)
    hold.status = HOLD_VOIDED
    hold.resolved_at = utcnow()
    await session.flush()
    return hold


# --- balances ---


async def _summed_balance(session: AsyncSession, account: LedgerAccount) -> Balance:
    posted = await session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(LedgerEntry.amount), 0)).where(LedgerEntry.account_id == account.id)
    )
    pending_debits = await session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(LedgerHold.amount), 0)).where(
            LedgerHold.debit_account_id == account.id, LedgerHold.status == HOLD_PENDING
        )
    )
    pending_credits = await session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(LedgerHold.amount), 0)).where(
            LedgerHold.credit_account_id == account.id, LedgerHold.status == HOLD_PENDING
        )
    )
    return Balance(account.id, account.currency, int(posted or 0), int(pending_debits or 0), int(pending_credits or 0))


async def _settle(session: AsyncSession) -> None:
    """The unit of work sees its own credits: apply those deferred before a balance row is read or changed."""
    if session.sync_session.info.get(DEFERRED_CREDITS_KEY):
        await session.run_sync(apply_deferred_credits)


async def account_balance(session: AsyncSession, account_id: int) -> Balance:
    await _settle(session)
    result = await session.execute(
        sa.select(LedgerAccount).where(LedgerAccount.id == account_id).execution_options(populate_existing=True)
    )
    account = result.scalar_one_or_none()
    if account is None:
        raise NotFound(f"ledger account {account_id} not found", field="account_id")
    return await _balance_of(session, account)


async def owner_balances(session: AsyncSession, owner: str) -> list[tuple[LedgerAccount, Balance]]:
    """Every account of `owner` with its balance, the accounts read in one statement."""
    await _settle(session)
    result = await session.execute(
        sa.select(LedgerAccount)
        .where(LedgerAccount.owner == owner)
        .order_by(LedgerAccount.kind, LedgerAccount.currency)
        .execution_options(populate_existing=True)
    )
    return [(account, await _balance_of(session, account)) for account in result.scalars().all()]


async def _balance_of(session: AsyncSession, account: LedgerAccount) -> Balance:
    """The balance of an account row just read (`populate_existing`, after `_settle`)."""
    if account.kept_as_sum:
        return await _summed_balance(session, account)
    return Balance(account.id, account.currency, account.posted, account.pending_debits, account.pending_credits)
