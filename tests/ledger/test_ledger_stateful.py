"""A hypothesis state machine drives the real ledger service beside an in-memory model, on both engines.

Every command is one committed unit of work (rolled back on error). The model predicts acceptance or the exact
error (class and field); the service must agree. After every step the whole ledger is read back from the
database and checked: entries balance per currency, balance rows equal the fold of entries and pending holds
and equal the model, floors hold, reversals and holds resolve at most once, and a rejected (or replayed)
command changed nothing at all.
"""

from __future__ import annotations

import asyncio
import shutil
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from partners.db.engine import create_engine
from partners.db.session import Database
from partners.kit.errors import AppError, Conflict, IdempotencyConflict, InsufficientFunds, Unprocessable
from partners.ledger import service
from partners.ledger.models import LedgerAccount, LedgerEntry, LedgerHold, LedgerTransaction
from partners.ledger.schemas import Posting

CURRENCIES = ("USD", "EUR")
LEDGER_TABLES = ("ledger_entries", "ledger_transactions", "ledger_holds", "ledger_accounts")


@dataclass(frozen=True)
class AccountSpec:
    owner: str
    kind: str
    currency: str
    may_go_negative: bool = False
    kept_as_sum: bool = False


ACCOUNT_SPECS = [
    *(AccountSpec(owner, "wallet", c) for owner in ("alice", "bob", "carol") for c in CURRENCIES),
    *(AccountSpec("house", "cash", c, may_go_negative=True) for c in CURRENCIES),
    *(AccountSpec("platform", "revenue", c, may_go_negative=True, kept_as_sum=True) for c in CURRENCIES),
]
OPENABLE_SPECS = [*ACCOUNT_SPECS, AccountSpec("platform", "floored-sum", "USD", kept_as_sum=True)]


@dataclass
class ModelAccount:
    id: int
    currency: str
    floored: bool
    posted: int = 0
    pending_debits: int = 0
    pending_credits: int = 0

    @property
    def available(self) -> int:
        return self.posted - self.pending_debits


@dataclass
class ModelTransaction:
    id: int
    key: str
    payload: tuple[Any, ...]
    legs: dict[int, int]
    kind: str
    replay: Callable[[AsyncSession], Awaitable[int]]
    reverses_id: int | None = None
    reversed_by: int | None = None
    hold_id: int | None = None


@dataclass
class ModelHold:
    id: int
    key: str
    payload: tuple[Any, ...]
    source: int
    destination: int
    currency: str
    amount: int
    status: str = service.HOLD_PENDING
    posted_amount: int = 0
    posting_id: int | None = None


@dataclass(frozen=True)
class Reject:
    error: type[AppError]
    field: str


@dataclass
class Outcome:
    value: int | None = None
    error: AppError | None = None


@dataclass
class Snapshot:
    accounts: list[tuple[Any, ...]] = field(default_factory=list)
    transactions: list[tuple[Any, ...]] = field(default_factory=list)
    entries: list[tuple[Any, ...]] = field(default_factory=list)
    holds: list[tuple[Any, ...]] = field(default_factory=list)
    balances: dict[int, tuple[int, int, int]] = field(default_factory=dict)


amounts = st.integers(min_value=-1, max_value=400)
FLAWS = ["none", "none", "none", "unbalanced", "zero amount", "repeated account"]
overdrafts = st.sampled_from([False, False, False, True])


class LedgerMachine(RuleBasedStateMachine):
    """Subclassed per engine with `reset_database`, which empties the ledger and returns a URL to use."""

    reset_database: ClassVar[Callable[[], str]]

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.database = Database(create_engine(type(self).reset_database()))
        self.keys = count(1)
        self.specs: dict[AccountSpec, int] = {}
        self.account_rows: dict[int, LedgerAccount] = {}
        self.accounts: dict[int, ModelAccount] = {}
        self.transactions: dict[int, ModelTransaction] = {}
        self.transaction_keys: dict[str, int] = {}
        self.holds: dict[int, ModelHold] = {}
        self.hold_keys: dict[str, int] = {}
        self.excused: set[int] = set()  # floored accounts an overdraft operation took below zero
        self.expect_unchanged = False
        self.previous: Snapshot | None = None

    def teardown(self) -> None:
        self.loop.run_until_complete(self.database.dispose())
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    # --- running commands against the real service ---

    def attempt(self, operation: Callable[[AsyncSession], Awaitable[int]]) -> Outcome:
        async def unit_of_work() -> Outcome:
            try:
                async with self.database.write() as session:
                    return Outcome(value=await operation(session))
            except AppError as error:
                return Outcome(error=error)

        return self.loop.run_until_complete(unit_of_work())

    def expect(self, outcome: Outcome, expected: Reject | int | None) -> int:
        """`expected`: a rejection, the id of an existing result (a replay), or None (something new)."""
        if isinstance(expected, Reject):
            assert outcome.error is not None, f"expected {expected}, the service accepted: {outcome.value}"
            assert (type(outcome.error), outcome.error.field) == (expected.error, expected.field), (
                f"expected {expected}, got {type(outcome.error).__name__}({outcome.error.field}): {outcome.error}"
            )
            self.expect_unchanged = True
            return -1
        assert outcome.error is None, f"expected acceptance, got {type(outcome.error).__name__}: {outcome.error}"
        assert outcome.value is not None
        if expected is not None:
            assert outcome.value == expected
            self.expect_unchanged = True
        return outcome.value

    def fresh_key(self) -> str:
        return f"key-{next(self.keys)}"

    def draw_accounts(self, data: st.DataObject, size: int) -> list[int]:
        """`size` distinct accounts of one currency, most of the time; else any accounts, repeats allowed."""
        if data.draw(st.sampled_from(["one currency"] * 3 + ["any"]), label="accounts") == "any":
            return [data.draw(st.sampled_from(sorted(self.accounts)), label="account") for _ in range(size)]
        currency = data.draw(st.sampled_from(CURRENCIES), label="currency")
        pool = sorted(a for a, account in self.accounts.items() if account.currency == currency)
        return data.draw(st.lists(st.sampled_from(pool), min_size=size, max_size=size, unique=True))

    def draw_hold(self, data: st.DataObject) -> ModelHold:
        """Most of the time a pending hold (if any), else any hold."""
        pending = sorted(h for h, hold in self.holds.items() if hold.status == service.HOLD_PENDING)
        if pending and data.draw(st.sampled_from(["pending"] * 3 + ["any"]), label="hold kind") == "pending":
            return self.holds[data.draw(st.sampled_from(pending), label="hold")]
        return self.holds[data.draw(st.sampled_from(sorted(self.holds)), label="hold")]

    def draw_transaction_to_reverse(self, data: st.DataObject) -> ModelTransaction:
        """Any transaction, or (half the time, if any) one whose reversal a floor would refuse."""
        refused = sorted(
            transaction.id
            for transaction in self.transactions.values()
            if self.predict_floor([(a, -amount) for a, amount in transaction.legs.items()], overdraft=False)
        )
        if refused and data.draw(st.sampled_from(["any", "refused by a floor"]), label="reverse") != "any":
            return self.transactions[data.draw(st.sampled_from(refused), label="transaction")]
        return self.transactions[data.draw(st.sampled_from(sorted(self.transactions)), label="transaction")]

    def draw_amount(self, data: st.DataObject, source: int) -> int:
        """Any amount, or one at the edge of what `source` has available (where floors are decided)."""
        if data.draw(st.sampled_from(["any", "edge"]), label="amount kind") == "any":
            return data.draw(amounts, label="amount")
        return max(1, self.accounts[source].available + data.draw(st.integers(-1, 1), label="edge"))

    # --- the model's rules ---

    def predict_postings(
        self, key: str, payload: tuple[Any, ...], legs: list[tuple[int, int]], overdraft: bool
    ) -> Reject | int | None:
        if key.startswith(service.HOLD_POSTING_KEY_PREFIX):
            return Reject(Unprocessable, "idempotency_key")
        if len(legs) < 2 or len({account for account, _ in legs}) != len(legs):
            return Reject(Unprocessable, "postings")
        if any(amount == 0 for _, amount in legs):
            return Reject(Unprocessable, "amount")
        sums: dict[str, int] = defaultdict(int)
        for account, amount in legs:
            sums[self.accounts[account].currency] += amount
        if any(sums.values()):
            return Reject(Unprocessable, "postings")
        if key in self.transaction_keys:
            existing = self.transactions[self.transaction_keys[key]]
            return existing.id if existing.payload == payload else Reject(IdempotencyConflict, "idempotency_key")
        return self.predict_floor(legs, overdraft)

    def predict_floor(self, legs: list[tuple[int, int]], overdraft: bool) -> Reject | None:
        for account_id, amount in legs:
            account = self.accounts[account_id]
            if amount < 0 and not overdraft and account.floored and account.available + amount < 0:
                return Reject(InsufficientFunds, "amount")
        return None

    def apply_legs(self, legs: dict[int, int], overdraft: bool) -> None:
        for account_id, amount in legs.items():
            account = self.accounts[account_id]
            account.posted += amount
            if overdraft and account.floored and account.available < 0:
                self.excused.add(account_id)

    def record_transaction(self, transaction: ModelTransaction, overdraft: bool) -> None:
        self.transactions[transaction.id] = transaction
        self.transaction_keys[transaction.key] = transaction.id
        self.apply_legs(transaction.legs, overdraft)

    # --- rules ---

    @initialize()
    def open_accounts(self) -> None:
        for spec in ACCOUNT_SPECS:
            self.open(spec)
        house = {spec.currency: self.specs[spec] for spec in ACCOUNT_SPECS if spec.kind == "cash"}
        for spec, account_id in self.specs.items():
            if spec.kind == "wallet":
                self.submit_transfer(self.fresh_key(), "funding", house[spec.currency], account_id, 300, False)
        # One hold already posted and one pending, so re-posting and voiding are reachable from the first step.
        alice, bob = (self.specs[AccountSpec(owner, "wallet", "USD")] for owner in ("alice", "bob"))
        self.submit_reserve(self.fresh_key(), house["USD"], alice, 100)
        self.submit_post(self.holds[max(self.holds)], 60)
        self.submit_reserve(self.fresh_key(), alice, bob, 50)

    @rule(spec=st.sampled_from(OPENABLE_SPECS))
    def open_account(self, spec: AccountSpec) -> None:
        self.open(spec)

    def open(self, spec: AccountSpec) -> None:
        async def operation(session: AsyncSession) -> int:
            account = await service.open_account(
                session,
                owner=spec.owner,
                kind=spec.kind,
                currency=spec.currency.lower(),
                may_go_negative=spec.may_go_negative,
                kept_as_sum=spec.kept_as_sum,
            )
            self.account_rows[account.id] = account
            return account.id

        if spec.kept_as_sum and not spec.may_go_negative:
            expected: Reject | int | None = Reject(Unprocessable, "may_go_negative")
        else:
            expected = self.specs.get(spec)
        account_id = self.expect(self.attempt(operation), expected)
        if expected is None:
            self.specs[spec] = account_id
            self.accounts[account_id] = ModelAccount(account_id, spec.currency, floored=not spec.may_go_negative)

    @rule(data=st.data(), overdraft=overdrafts)
    def transfer(self, data: st.DataObject, overdraft: bool) -> None:
        source, destination = self.draw_accounts(data, 2)
        amount = self.draw_amount(data, source)
        self.submit_transfer(self.fresh_key(), "payment", source, destination, amount, overdraft)

    def submit_transfer(self, key: str, kind: str, source: int, destination: int, amount: int, overdraft: bool) -> None:
        rows = self.account_rows

        async def operation(session: AsyncSession) -> int:
            transaction = await service.transfer(
                session,
                idempotency_key=key,
                kind=kind,
                source=rows[source],
                destination=rows[destination],
                amount=amount,
                allow_overdraft=overdraft,
            )
            return transaction.id

        legs = [(source, -amount), (destination, amount)]
        payload = (kind, tuple(sorted(legs)))
        if amount <= 0:
            expected: Reject | int | None = Reject(Unprocessable, "amount")
        else:
            expected = self.predict_postings(key, payload, legs, overdraft)
        transaction_id = self.expect(self.attempt(operation), expected)
        if expected is None:
            transaction = ModelTransaction(transaction_id, key, payload, dict(legs), kind, operation)
            self.record_transaction(transaction, overdraft)

    @rule(data=st.data(), size=st.integers(1, 4), flaw=st.sampled_from(FLAWS), overdraft=overdrafts)
    def post_transaction(self, data: st.DataObject, size: int, flaw: str, overdraft: bool) -> None:
        accounts = self.draw_accounts(data, size)
        amounts_drawn = [data.draw(st.integers(-300, 300), label="amount") for _ in accounts]
        legs = self.balanced(list(zip(accounts, amounts_drawn, strict=True)))
        if flaw == "unbalanced":
            legs[0] = (legs[0][0], legs[0][1] + 1)
        elif flaw == "zero amount":
            legs[0] = (legs[0][0], 0)
        elif flaw == "repeated account":
            legs.append((legs[0][0], 1))
        key = self.fresh_key()
        rows = self.account_rows

        async def operation(session: AsyncSession) -> int:
            postings = [Posting(rows[account], amount) for account, amount in legs]
            transaction = await service.post_transaction(
                session, idempotency_key=key, kind="multi", postings=postings, allow_overdraft=overdraft
            )
            return transaction.id

        payload = ("multi", tuple(sorted(legs)))
        expected = self.predict_postings(key, payload, legs, overdraft)
        transaction_id = self.expect(self.attempt(operation), expected)
        if expected is None:
            transaction = ModelTransaction(transaction_id, key, payload, dict(legs), "multi", operation)
            self.record_transaction(transaction, overdraft)

    def balanced(self, legs: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Make each currency's legs sum to zero by adjusting that currency's last leg (which may become 0)."""
        last: dict[str, int] = {}
        sums: dict[str, int] = defaultdict(int)
        for index, (account, amount) in enumerate(legs):
            currency = self.accounts[account].currency
            last[currency] = index
            sums[currency] += amount
        adjusted = list(legs)
        for currency, index in last.items():
            account, amount = adjusted[index]
            adjusted[index] = (account, amount - sums[currency])
        return adjusted

    @precondition(lambda self: bool(self.transactions))
    @rule(data=st.data())
    def replay_transaction(self, data: st.DataObject) -> None:
        transaction = self.transactions[data.draw(st.sampled_from(sorted(self.transactions)))]
        self.expect(self.attempt(transaction.replay), transaction.id)

    @precondition(lambda self: bool(self.transactions))
    @rule(data=st.data(), amount=st.integers(1, 50))
    def reuse_transaction_key(self, data: st.DataObject, amount: int) -> None:
        key = data.draw(st.sampled_from(sorted(self.transaction_keys)))
        source, destination = self.draw_accounts(data, 2)
        self.submit_transfer(key, "another payload", source, destination, amount, overdraft=False)

    @rule(data=st.data())
    def reserve(self, data: st.DataObject) -> None:
        source, destination = self.draw_accounts(data, 2)
        amount = self.draw_amount(data, source)
        self.submit_reserve(self.fresh_key(), source, destination, amount)

    def submit_reserve(self, key: str, source: int, destination: int, amount: int) -> None:
        rows = self.account_rows

        async def operation(session: AsyncSession) -> int:
            hold = await service.reserve(
                session,
                idempotency_key=key,
                kind="payout",
                source=rows[source],
                destination=rows[destination],
                amount=amount,
            )
            return hold.id

        payload = (source, destination, amount)
        expected: Reject | int | None
        if amount <= 0:
            expected = Reject(Unprocessable, "amount")
        elif source == destination or self.accounts[source].currency != self.accounts[destination].currency:
            expected = Reject(Unprocessable, "destination")
        elif key in self.hold_keys:
            existing = self.holds[self.hold_keys[key]]
            expected = existing.id if existing.payload == payload else Reject(IdempotencyConflict, "idempotency_key")
        else:
            expected = self.predict_floor([(source, -amount)], overdraft=False)
        hold_id = self.expect(self.attempt(operation), expected)
        if expected is None:
            currency = self.accounts[source].currency
            self.holds[hold_id] = ModelHold(hold_id, key, payload, source, destination, currency, amount)
            self.hold_keys[key] = hold_id
            self.accounts[source].pending_debits += amount
            self.accounts[destination].pending_credits += amount

    @precondition(lambda self: bool(self.holds))
    @rule(data=st.data(), same_payload=st.booleans())
    def reuse_hold_key(self, data: st.DataObject, same_payload: bool) -> None:
        hold = self.holds[data.draw(st.sampled_from(sorted(self.holds)))]
        amount = hold.amount if same_payload else hold.amount + 1
        self.submit_reserve(hold.key, hold.source, hold.destination, amount)

    @precondition(lambda self: bool(self.holds))
    @rule(data=st.data(), mode=st.sampled_from(["all", "full", "partial", "partial", "over", "zero"]))
    def post_hold(self, data: st.DataObject, mode: str) -> None:
        hold = self.draw_hold(data)
        if mode == "partial":
            amount: int | None = data.draw(st.integers(1, max(1, hold.amount - 1)), label="partial")
        else:
            amount = {"all": None, "full": hold.amount, "over": hold.amount + 1, "zero": 0}[mode]
        self.submit_post(hold, amount)

    @precondition(lambda self: any(hold.status != service.HOLD_PENDING for hold in self.holds.values()))
    @rule(data=st.data(), action=st.sampled_from(["post as before", "post another amount", "post all", "void"]))
    def resolve_again(self, data: st.DataObject, action: str) -> None:
        resolved = sorted(h for h, hold in self.holds.items() if hold.status != service.HOLD_PENDING)
        hold = self.holds[data.draw(st.sampled_from(resolved), label="hold")]
        if action == "void":
            self.submit_void(hold)
        elif action == "post all":
            self.submit_post(hold, None)
        else:
            before = hold.posted_amount or hold.amount
            self.submit_post(hold, before if action == "post as before" else before % hold.amount + 1)

    def submit_post(self, hold: ModelHold, amount: int | None) -> None:
        async def operation(session: AsyncSession) -> int:
            transaction = await service.post_hold(session, hold.id, amount=amount)
            return transaction.id

        effective = hold.amount if amount is None else amount
        expected: Reject | int | None
        if hold.status == service.HOLD_POSTED:
            expected = hold.posting_id if effective == hold.posted_amount else Reject(Conflict, "amount")
        elif hold.status == service.HOLD_VOIDED:
            expected = Reject(Conflict, "hold_id")
        elif not 0 < effective <= hold.amount:
            expected = Reject(Unprocessable, "amount")
        else:
            expected = None
        transaction_id = self.expect(self.attempt(operation), expected)
        if expected is None:
            self.release(hold)
            hold.status, hold.posted_amount, hold.posting_id = service.HOLD_POSTED, effective, transaction_id
            legs = {hold.source: -effective, hold.destination: effective}
            key = f"{service.HOLD_POSTING_KEY_PREFIX}{hold.id}:post"
            payload = ("hold", hold.id, effective)
            transaction = ModelTransaction(transaction_id, key, payload, legs, "payout", operation, hold_id=hold.id)
            self.record_transaction(transaction, overdraft=False)

    def release(self, hold: ModelHold) -> None:
        self.accounts[hold.source].pending_debits -= hold.amount
        self.accounts[hold.destination].pending_credits -= hold.amount

    @precondition(lambda self: bool(self.holds))
    @rule(data=st.data())
    def void_hold(self, data: st.DataObject) -> None:
        self.submit_void(self.draw_hold(data))

    def submit_void(self, hold: ModelHold) -> None:
        async def operation(session: AsyncSession) -> int:
            voided = await service.void_hold(session, hold.id)
            assert voided.status == service.HOLD_VOIDED
            return voided.id

        expected: Reject | int | None = {
            service.HOLD_PENDING: None,
            service.HOLD_VOIDED: hold.id,
            service.HOLD_POSTED: Reject(Conflict, "hold_id"),
        }[hold.status]
        self.expect(self.attempt(operation), expected)
        if expected is None:
            self.release(hold)
            hold.status = service.HOLD_VOIDED

    @precondition(lambda self: bool(self.transactions))
    @rule(data=st.data(), key_mode=st.sampled_from(["fresh", "its reversal's", "used elsewhere"]), overdraft=overdrafts)
    def reverse(self, data: st.DataObject, key_mode: str, overdraft: bool) -> None:
        original = self.draw_transaction_to_reverse(data)
        if key_mode == "used elsewhere":
            key = data.draw(st.sampled_from(sorted(self.transaction_keys)))
        elif key_mode == "its reversal's" and original.reversed_by is not None:
            key = self.transactions[original.reversed_by].key
        else:
            key = self.fresh_key()

        async def operation(session: AsyncSession) -> int:
            reversal = await service.reverse_transaction(
                session, original.id, idempotency_key=key, allow_overdraft=overdraft
            )
            assert reversal.reverses_id == original.id
            return reversal.id

        legs = {account: -amount for account, amount in original.legs.items()}
        payload = ("reversal", original.id)
        expected: Reject | int | None
        if original.reverses_id is not None:
            expected = Reject(Conflict, "transaction_id")
        elif key.startswith(service.HOLD_POSTING_KEY_PREFIX):
            expected = Reject(Unprocessable, "idempotency_key")
        elif key in self.transaction_keys:
            existing = self.transactions[self.transaction_keys[key]]
            expected = existing.id if existing.payload == payload else Reject(IdempotencyConflict, "idempotency_key")
        elif original.reversed_by is not None:
            expected = Reject(Conflict, "transaction_id")
        else:
            expected = self.predict_floor(list(legs.items()), overdraft)
        reversal_id = self.expect(self.attempt(operation), expected)
        if expected is None:
            kind = f"reversal:{original.kind}"
            reversal = ModelTransaction(reversal_id, key, payload, legs, kind, operation, reverses_id=original.id)
            original.reversed_by = reversal_id
            self.record_transaction(reversal, overdraft)

    # --- invariants, read back from the database ---

    @invariant()
    def the_database_agrees(self) -> None:
        snapshot = self.loop.run_until_complete(self.read_snapshot())
        if self.expect_unchanged:
            assert self.previous is not None
            assert snapshot == self.previous, "a rejected or replayed command changed the ledger"
        self.expect_unchanged = False
        self.previous = snapshot
        self.check_entries(snapshot)
        self.check_balances(snapshot)
        self.check_transactions(snapshot)
        self.check_holds(snapshot)

    async def read_snapshot(self) -> Snapshot:
        snapshot = Snapshot()
        async with self.database.read() as session:
            accounts = await session.execute(
                sa.select(
                    LedgerAccount.id,
                    LedgerAccount.currency,
                    LedgerAccount.may_go_negative,
                    LedgerAccount.kept_as_sum,
                    LedgerAccount.posted,
                    LedgerAccount.pending_debits,
                    LedgerAccount.pending_credits,
                ).order_by(LedgerAccount.id)
            )
            snapshot.accounts = [tuple(row) for row in accounts]
            transactions = await session.execute(
                sa.select(
                    LedgerTransaction.id,
                    LedgerTransaction.idempotency_key,
                    LedgerTransaction.payload_hash,
                    LedgerTransaction.kind,
                    LedgerTransaction.reverses_id,
                    LedgerTransaction.hold_id,
                ).order_by(LedgerTransaction.id)
            )
            snapshot.transactions = [tuple(row) for row in transactions]
            entries = await session.execute(
                sa.select(
                    LedgerEntry.id,
                    LedgerEntry.transaction_id,
                    LedgerEntry.account_id,
                    LedgerEntry.currency,
                    LedgerEntry.amount,
                ).order_by(LedgerEntry.id)
            )
            snapshot.entries = [tuple(row) for row in entries]
            holds = await session.execute(
                sa.select(
                    LedgerHold.id,
                    LedgerHold.idempotency_key,
                    LedgerHold.debit_account_id,
                    LedgerHold.credit_account_id,
                    LedgerHold.currency,
                    LedgerHold.amount,
                    LedgerHold.status,
                    LedgerHold.posted_amount,
                    LedgerHold.resolved_at.is_not(None),
                ).order_by(LedgerHold.id)
            )
            snapshot.holds = [tuple(row) for row in holds]
            # Accounts kept as a sum have no balance row to compare: ask the service for their balance.
            for account_id, _, _, kept_as_sum, *_ in snapshot.accounts:
                if kept_as_sum:
                    balance = await service.account_balance(session, account_id)
                    snapshot.balances[account_id] = (balance.posted, balance.pending_debits, balance.pending_credits)
        return snapshot

    def check_entries(self, snapshot: Snapshot) -> None:
        currencies = {account_id: currency for account_id, currency, *_ in snapshot.accounts}
        overall: dict[str, int] = defaultdict(int)
        per_transaction: dict[tuple[int, str], int] = defaultdict(int)
        for _, transaction_id, account_id, currency, amount in snapshot.entries:
            assert currency == currencies[account_id], "an entry's currency differs from its account's"
            assert amount != 0
            overall[currency] += amount
            per_transaction[(transaction_id, currency)] += amount
        assert not any(overall.values()), f"entries do not sum to zero per currency: {dict(overall)}"
        assert not any(per_transaction.values()), "a transaction's entries do not sum to zero per currency"

    def check_balances(self, snapshot: Snapshot) -> None:
        folded: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
        for _, _, account_id, _, amount in snapshot.entries:
            folded[account_id][0] += amount
        for _, _, debit, credit, _, amount, status, _, _ in snapshot.holds:
            if status == service.HOLD_PENDING:
                folded[debit][1] += amount
                folded[credit][2] += amount
        assert {a for a, *_ in snapshot.accounts} == set(self.accounts)
        for account_id, _, may_go_negative, kept_as_sum, *row in snapshot.accounts:
            fold = tuple(folded[account_id])
            model = self.accounts[account_id]
            assert fold == (model.posted, model.pending_debits, model.pending_credits), f"account {account_id}"
            if kept_as_sum:
                assert tuple(row) == (0, 0, 0), f"the balance row of summed account {account_id} was written"
                assert snapshot.balances[account_id] == fold, f"account_balance({account_id}) is not the fold"
            else:
                assert tuple(row) == fold, f"balance row of account {account_id}"
            assert may_go_negative == (not model.floored)
            if model.floored and model.available >= 0:
                self.excused.discard(account_id)
            if model.floored and model.available < 0:
                assert account_id in self.excused, f"floored account {account_id} below zero without an overdraft"

    def check_transactions(self, snapshot: Snapshot) -> None:
        stored = {row[0]: row for row in snapshot.transactions}
        assert set(stored) == set(self.transactions)
        legs: dict[int, dict[int, int]] = defaultdict(dict)
        for _, transaction_id, account_id, _, amount in snapshot.entries:
            legs[transaction_id][account_id] = amount
        reversed_ids = [row[4] for row in snapshot.transactions if row[4] is not None]
        assert len(reversed_ids) == len(set(reversed_ids)), "a transaction was reversed twice"
        for transaction_id, (_, key, _, kind, reverses_id, hold_id) in stored.items():
            model = self.transactions[transaction_id]
            assert (key, reverses_id, hold_id) == (model.key, model.reverses_id, model.hold_id)
            assert legs[transaction_id] == model.legs
            if reverses_id is not None:
                assert stored[reverses_id][4] is None, "a reversal was reversed"
                assert kind == f"reversal:{self.transactions[reverses_id].kind}"

    def check_holds(self, snapshot: Snapshot) -> None:
        postings: dict[int, int] = defaultdict(int)
        for *_, hold_id in snapshot.transactions:
            if hold_id is not None:
                postings[hold_id] += 1
        assert {row[0] for row in snapshot.holds} == set(self.holds)
        for hold_id, key, debit, credit, currency, amount, status, posted_amount, resolved in snapshot.holds:
            model = self.holds[hold_id]
            assert (key, debit, credit, currency, amount) == (
                model.key,
                model.source,
                model.destination,
                model.currency,
                model.amount,
            )
            assert (status, posted_amount) == (model.status, model.posted_amount)
            assert 0 <= posted_amount <= amount
            assert resolved == (status != service.HOLD_PENDING)
            assert postings[hold_id] == (1 if status == service.HOLD_POSTED else 0), "a hold was posted twice"
            assert (posted_amount > 0) == (status == service.HOLD_POSTED)


def sqlite_reset(database_url: str, directory: Path) -> Callable[[], str]:
    """A fresh copy of the (schema-only) database file per example."""
    template = Path(make_url(database_url).database or "")
    examples = count(1)

    def reset() -> str:
        path = directory / f"example-{next(examples)}.db"
        shutil.copyfile(template, path)
        return f"sqlite+aiosqlite:///{path}"

    return reset


@pytest.fixture
def reset_database(database_url: str, tmp_path: Path) -> Iterator[Callable[[], str]]:
    if database_url.startswith("sqlite"):
        yield sqlite_reset(database_url, tmp_path)
        return
    engine = sa.create_engine(make_url(database_url).set(drivername="postgresql+psycopg"))
    truncate = sa.text(f"TRUNCATE {', '.join(LEDGER_TABLES)} RESTART IDENTITY CASCADE")

    def reset() -> str:
        with engine.begin() as connection:
            connection.execute(truncate)
        return database_url

    yield reset
    engine.dispose()


def test_the_ledger_agrees_with_its_model(database_url: str, reset_database: Callable[[], str]) -> None:
    machine = type("LedgerMachineUnderTest", (LedgerMachine,), {"reset_database": staticmethod(reset_database)})
    on_postgres = not database_url.startswith("sqlite")
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=20 if on_postgres else 30,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
