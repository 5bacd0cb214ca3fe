"""Host events (idempotent by external id), purchases and their refunds."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from partners.db.base import Base, CreatedAtMixin, IdMixin
from partners.db.types import BigId, Currency, UTCDateTime

PRODUCTS = ("sms", "whatsapp", "voice", "rental", "subscription", "credits")


class HostEvent(IdMixin, CreatedAtMixin, Base):
    """Every accepted host event, with the answer given, so a replay gets the same answer."""

    __tablename__ = "host_events"
    __table_args__ = (UniqueConstraint("kind", "external_id"),)

    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # signup | purchase | refund | chargeback
    external_id: Mapped[str] = mapped_column(String(128), nullable=False)
    payload_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    status_code: Mapped[int] = mapped_column(Integer, nullable=False)
    response: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)


class Purchase(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "purchases"
    __table_args__ = (Index("ix_purchases_partner_id_occurred_at", "partner_id", "occurred_at"),)

    external_id: Mapped[str] = mapped_column(String(128), nullable=False, unique=True)
    customer_id: Mapped[int] = mapped_column(BigId, ForeignKey("customers.id"), nullable=False, index=True)
    partner_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("partners.id"), nullable=True)
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(Currency(), nullable=False)
    product: Mapped[str] = mapped_column(String(16), nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    refunded_amount: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="completed")
    # completed | partially_refunded | refunded | charged_back


class Refund(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "refunds"

    external_id: Mapped[str] = mapped_column(String(128), nullable=False, unique=True)
    purchase_id: Mapped[int] = mapped_column(BigId, ForeignKey("purchases.id"), nullable=False, index=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # refund | chargeback
    amount: Mapped[int] = mapped_column(BigInteger, nullable=False)
    reason: Mapped[str] = mapped_column(String(500), nullable=False, default="")
