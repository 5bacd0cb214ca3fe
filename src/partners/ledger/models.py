"""Ledger tables: accounts, journal transactions and their entries, two-phase holds.

Sign convention: an entry's `amount` is signed; an account's balance is the sum of its entries. A transfer of
x from A to B is the pair (A, -x), (B, +x). A transaction's entries sum to zero per currency.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from partners.db.base import Base, CreatedAtMixin, IdMixin
from partners.db.types import BigId, Currency, UTCDateTime


class LedgerAccount(IdMixin, CreatedAtMixin, Base):
    """One balance: (owner, kind, currency).

    `may_go_negative` is the floor policy. `kept_as_sum` accounts (platform-wide ones that every sale touches)
    have no balance row updates: their balance is the sum of their entries, so they are never a hot row.
    """

    __tablename__ = "ledger_accounts"
    __table_args__ = (UniqueConstraint("owner", "kind", "currency"),)

    owner: Mapped[str] = mapped_column(String(64), nullable=False)
    kind: Mapped[str] = mapped_column(String(64), nullable=False)
    currency: Mapped[str] = mapped_column(Currency(), nullable=False)
    may_go_negative: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    kept_as_sum: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    posted: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    pending_debits: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    pending_credits: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class LedgerTransaction(IdMixin, CreatedAtMixin, Base):
    """An append-only journal transaction. `reverses_id` is unique: a transaction is reversed at most once."""

    __tablename__ = "ledger_transactions"

    idempotency_key: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
    payload_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    kind: Mapped[str] = mapped_column(String(64), nullable=False)
    description: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    reverses_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("ledger_transactions.id"), nullable=True, unique=True
    )
    hold_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("ledger_holds.id"), nullable=True)


class LedgerEntry(IdMixin, Base):
    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="amount_not_zero"),
        Index("ix_ledger_entries_account_id_id", "account_id", "id"),
    )

    transaction_id: Mapped[int] = mapped_column(BigId, ForeignKey("ledger_transactions.id"), nullable=False, index=True)
    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("ledger_accounts.id"), nullable=False)
    currency: Mapped[str] = mapped_column(Currency(), nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)


class LedgerHold(IdMixin, CreatedAtMixin, Base):
    """A two-phase transfer: reserved now, later posted (in part or whole) or voided, exactly once."""

    __tablename__ = "ledger_holds"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)

    idempotency_key: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
    payload_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    kind: Mapped[str] = mapped_column(String(64), nullable=False)
    debit_account_id: Mapped[int] = mapped_column(BigId, ForeignKey("ledger_accounts.id"), nullable=False)
    credit_account_id: Mapped[int] = mapped_column(BigId, ForeignKey("ledger_accounts.id"), nullable=False)
    currency: Mapped[str] = mapped_column(Currency(), nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    posted_amount: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
