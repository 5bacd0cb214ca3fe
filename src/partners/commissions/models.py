"""Commissions: one per (purchase, level). Money lives in the ledger; these rows say why it moved."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from partners.db.base import Base, CreatedAtMixin, IdMixin
from partners.db.types import BigId, Currency, UTCDateTime

COMMISSION_STATUSES = ("pending", "approved", "paid", "reversed", "rejected")


class Commission(IdMixin, CreatedAtMixin, Base):
    """`amount` is what was earned; `reversed_amount` what refunds/chargebacks/rejections took back since.
    The partner is owed amount - reversed_amount (+ adjustments)."""

    __tablename__ = "commissions"
    __table_args__ = (
        UniqueConstraint("purchase_id", "level"),
        Index("ix_commissions_partner_id_created_at", "partner_id", "created_at"),
        Index("ix_commissions_status_payable_at", "status", "payable_at"),
    )

    purchase_id: Mapped[int] = mapped_column(BigId, ForeignKey("purchases.id"), nullable=False)
    partner_id: Mapped[int] = mapped_column(BigId, ForeignKey("partners.id"), nullable=False)
    level: Mapped[int] = mapped_column(Integer, nullable=False)
    currency: Mapped[str] = mapped_column(Currency(), nullable=False)
    base_amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    rate_bps: Mapped[int] = mapped_column(Integer, nullable=False)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    reversed_amount: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    payable_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    status_reason: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    ledger_transaction_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("ledger_transactions.id"), nullable=True
    )


class CommissionAdjustment(IdMixin, CreatedAtMixin, Base):
    """A staff correction (signed amount) with its reason, posted through the ledger and audited."""

    __tablename__ = "commission_adjustments"

    commission_id: Mapped[int] = mapped_column(BigId, ForeignKey("commissions.id"), nullable=False, index=True)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    reason: Mapped[str] = mapped_column(String(500), nullable=False)
    staff_id: Mapped[str] = mapped_column(String(64), nullable=False)
    ledger_transaction_id: Mapped[int] = mapped_column(BigId, ForeignKey("ledger_transactions.id"), nullable=False)
