"""Disputes: a partner contests one of its commissions or claims a missing conversion; staff answer in a
thread and decide. Evidence files are stored in the database (see `DisputeEvidence`)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from partners.db.base import Base, CreatedAtMixin, IdMixin
from partners.db.types import BigId, Currency, UTCDateTime

COMMISSION_KINDS = ("wrong_amount", "reversed_unfairly", "other")
MISSING_CONVERSION = "missing_conversion"
DISPUTE_KINDS = (*COMMISSION_KINDS, MISSING_CONVERSION)
# open (nobody answered yet) -> awaiting_partner / awaiting_staff (by who wrote last) -> accepted | rejected
OPEN_STATUSES = ("open", "awaiting_partner", "awaiting_staff")
WAITING_ON_STAFF = ("open", "awaiting_staff")
CLOSED_STATUSES = ("accepted", "rejected")
DISPUTE_STATUSES = (*OPEN_STATUSES, *CLOSED_STATUSES)
REMEDIES = ("adjustment", "conversion")


class Dispute(IdMixin, CreatedAtMixin, Base):
    """`awaiting_staff_since` is when the partner's oldest unanswered word arrived (the SLA clock); it is
    cleared by a staff reply or the decision. The remedy of an accepted dispute is linked: the ledger
    transaction (and commission adjustment) of an adjustment, or the purchase of a manual conversion."""

    __tablename__ = "disputes"
    __table_args__ = (
        Index("ix_disputes_partner_id_created_at", "partner_id", "created_at"),
        Index("ix_disputes_status_awaiting_staff_since", "status", "awaiting_staff_since"),
    )

    partner_id: Mapped[int] = mapped_column(BigId, ForeignKey("partners.id"), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="open")
    commission_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("commissions.id"), nullable=True, index=True)
    claimed_amount: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    currency: Mapped[str | None] = mapped_column(Currency(), nullable=True)
    order_reference: Mapped[str | None] = mapped_column(String(128), nullable=True)
    order_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    customer_external_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    awaiting_staff_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_staff_reply_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_partner_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    sla_alert_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    resolution: Mapped[str | None] = mapped_column(String(16), nullable=True)  # adjustment | conversion
    resolution_reason: Mapped[str] = mapped_column(Text, nullable=False, default="")
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    adjustment_amount: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    ledger_transaction_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("ledger_transactions.id"), nullable=True
    )
    commission_adjustment_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("commission_adjustments.id"), nullable=True
    )
    purchase_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("purchases.id"), nullable=True)


class DisputeMessage(IdMixin, CreatedAtMixin, Base):
    """One message of the thread. The partner's opening text is the first one."""

    __tablename__ = "dispute_messages"
    __table_args__ = (Index("ix_dispute_messages_dispute_id_id", "dispute_id", "id"),)

    dispute_id: Mapped[int] = mapped_column(BigId, ForeignKey("disputes.id"), nullable=False)
    author_kind: Mapped[str] = mapped_column(String(16), nullable=False)  # partner | staff
    author_id: Mapped[str] = mapped_column(String(64), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)


class DisputeEvidence(IdMixin, CreatedAtMixin, Base):
    """An evidence file. The bytes live in this row (a few MB at most, limited by settings): they commit or
    roll back with the dispute, are backed up with the database and are readable from any API machine.
    `content` is deferred and raises if touched unloaded, so listings never read the bytes."""

    __tablename__ = "dispute_evidence"

    dispute_id: Mapped[int] = mapped_column(BigId, ForeignKey("disputes.id"), nullable=False, index=True)
    filename: Mapped[str] = mapped_column(String(255), nullable=False)
    content_type: Mapped[str] = mapped_column(String(64), nullable=False)
    size_bytes: Mapped[int] = mapped_column(Integer, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    uploaded_by_kind: Mapped[str] = mapped_column(String(16), nullable=False)
    uploaded_by_id: Mapped[str] = mapped_column(String(64), nullable=False)
    content: Mapped[bytes] = mapped_column(LargeBinary, nullable=False, deferred=True, deferred_raiseload=True)
