"""Payout methods, payouts (requests), batches, the files providers produce, and which commissions a payout
pays. Money lives in the ledger (a payout's hold); these rows say why it moved and where it stands."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from partners.db.base import Base, CreatedAtMixin, IdMixin
from partners.db.types import BigId, Currency, UTCDateTime

PAYOUT_STATUSES = ("pending", "processing", "paid", "failed", "returned", "cancelled")
LIVE_PAYOUT_STATUSES = ("pending", "processing", "paid")
BATCH_STATUSES = ("open", "approved", "processing", "completed")


class PayoutMethod(IdMixin, CreatedAtMixin, Base):
    """How a partner is paid in one currency. `details_encrypted` holds the JSON details (Fernet);
    `details_masked` is what may be shown. A change needs the emailed token (`confirmed_at`) and, if the
    partner had a method before, waits out `cooldown_until`."""

    __tablename__ = "payout_methods"
    __table_args__ = (UniqueConstraint("partner_id", "currency"),)

    partner_id: Mapped[int] = mapped_column(BigId, ForeignKey("partners.id"), nullable=False, index=True)
    currency: Mapped[str] = mapped_column(Currency(), nullable=False)
    method: Mapped[str] = mapped_column(String(24), nullable=False)
    details_encrypted: Mapped[str] = mapped_column(Text, nullable=False)
    details_masked: Mapped[dict[str, str]] = mapped_column(JSON, nullable=False, default=dict)
    confirmation_token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    confirmation_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    cooldown_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class PayoutBatch(IdMixin, CreatedAtMixin, Base):
    """A group of pending payouts that finance reviews and approves together."""

    __tablename__ = "payout_batches"

    status: Mapped[str] = mapped_column(String(16), nullable=False, default="open")
    method_filter: Mapped[str | None] = mapped_column(String(24), nullable=True)
    currency_filter: Mapped[str | None] = mapped_column(Currency(), nullable=True)
    created_by: Mapped[str] = mapped_column(String(64), nullable=False)
    required_approvals: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    executed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class PayoutBatchApproval(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "payout_batch_approvals"
    __table_args__ = (UniqueConstraint("batch_id", "staff_id"),)

    batch_id: Mapped[int] = mapped_column(BigId, ForeignKey("payout_batches.id"), nullable=False, index=True)
    staff_id: Mapped[str] = mapped_column(String(64), nullable=False)


class PayoutBatchRail(IdMixin, CreatedAtMixin, Base):
    """One provider run of a batch (per method): what the rail answered, for polling and the record."""

    __tablename__ = "payout_batch_rails"
    __table_args__ = (UniqueConstraint("batch_id", "method"),)

    batch_id: Mapped[int] = mapped_column(BigId, ForeignKey("payout_batches.id"), nullable=False)
    method: Mapped[str] = mapped_column(String(24), nullable=False)
    remote_reference: Mapped[str | None] = mapped_column(String(200), nullable=True)
    polls: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class PayoutBatchFile(IdMixin, CreatedAtMixin, Base):
    """A file a provider produced (pain.001, NACHA, CSV), kept for finance to download."""

    __tablename__ = "payout_batch_files"
    __table_args__ = (UniqueConstraint("batch_id", "name"),)

    batch_id: Mapped[int] = mapped_column(BigId, ForeignKey("payout_batches.id"), nullable=False, index=True)
    method: Mapped[str] = mapped_column(String(24), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    media_type: Mapped[str] = mapped_column(String(100), nullable=False)
    content: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)


class Payout(IdMixin, CreatedAtMixin, Base):
    """One payout to one partner: pending → processing → paid | failed (returned after paid; cancelled by
    the partner while pending). `hold_id` is its ledger reservation; `details_encrypted` the method's
    details when it was requested (a later change of details does not redirect it)."""

    __tablename__ = "payouts"
    __table_args__ = (
        UniqueConstraint("partner_id", "idempotency_key"),
        Index("ix_payouts_status_batch_id", "status", "batch_id"),
        Index("ix_payouts_partner_id_created_at", "partner_id", "created_at"),
    )

    partner_id: Mapped[int] = mapped_column(BigId, ForeignKey("partners.id"), nullable=False)
    program_id: Mapped[int] = mapped_column(BigId, ForeignKey("programs.id"), nullable=False)
    currency: Mapped[str] = mapped_column(Currency(), nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    method: Mapped[str] = mapped_column(String(24), nullable=False)
    details_encrypted: Mapped[str] = mapped_column(Text, nullable=False)
    details_masked: Mapped[dict[str, str]] = mapped_column(JSON, nullable=False, default=dict)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    source: Mapped[str] = mapped_column(String(16), nullable=False, default="request")  # request | schedule
    idempotency_key: Mapped[str] = mapped_column(String(200), nullable=False)
    request_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    hold_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("ledger_holds.id"), nullable=True)
    batch_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("payout_batches.id"), nullable=True)
    reference: Mapped[str | None] = mapped_column(String(200), nullable=True)
    failure_reason: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    processing_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    returned_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    host_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class PayoutAllocation(IdMixin, Base):
    """Which commissions a payout pays (FIFO over approved, unpaid money) and which clawbacks it nets
    (negative amounts against commissions reversed after they were paid). Sums to the payout's amount."""

    __tablename__ = "payout_allocations"
    __table_args__ = (UniqueConstraint("payout_id", "commission_id"),)

    payout_id: Mapped[int] = mapped_column(BigId, ForeignKey("payouts.id"), nullable=False, index=True)
    commission_id: Mapped[int] = mapped_column(BigId, ForeignKey("commissions.id"), nullable=False, index=True)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
