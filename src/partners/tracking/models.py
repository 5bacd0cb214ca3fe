"""Tracking links, clicks, coupons and the customers attributed to partners."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from partners.db.base import Base, CreatedAtMixin, IdMixin
from partners.db.types import BigId, UTCDateTime


class TrackingLink(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "tracking_links"

    partner_id: Mapped[int] = mapped_column(BigId, ForeignKey("partners.id"), nullable=False, index=True)
    code: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    destination_url: Mapped[str] = mapped_column(String(2000), nullable=False)
    utm_source: Mapped[str | None] = mapped_column(String(200), nullable=True)
    utm_medium: Mapped[str | None] = mapped_column(String(200), nullable=True)
    utm_campaign: Mapped[str | None] = mapped_column(String(200), nullable=True)
    utm_term: Mapped[str | None] = mapped_column(String(200), nullable=True)
    utm_content: Mapped[str | None] = mapped_column(String(200), nullable=True)
    sub_ids: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)


class Click(IdMixin, Base):
    """A recorded click. `click_id` is the public id put in the cookie and the redirect URL."""

    __tablename__ = "clicks"
    __table_args__ = (
        Index("ix_clicks_partner_id_occurred_at", "partner_id", "occurred_at"),
        Index("ix_clicks_link_id_occurred_at", "link_id", "occurred_at"),
    )

    click_id: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)
    link_id: Mapped[int] = mapped_column(BigId, ForeignKey("tracking_links.id"), nullable=False)
    partner_id: Mapped[int] = mapped_column(BigId, ForeignKey("partners.id"), nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    ip_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    user_agent: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    referrer: Mapped[str] = mapped_column(String(1000), nullable=False, default="")
    country: Mapped[str | None] = mapped_column(String(2), nullable=True)
    is_bot: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # The `np_click` cookie the browser already carried: chains one visitor's clicks for first-click.
    previous_click_id: Mapped[str | None] = mapped_column(String(32), nullable=True)


class Coupon(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "coupons"

    code: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    partner_id: Mapped[int] = mapped_column(BigId, ForeignKey("partners.id"), nullable=False, index=True)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)


class Customer(IdMixin, CreatedAtMixin, Base):
    """A host customer. Once attributed, bound to its partner for life (unless an admin re-assigns it)."""

    __tablename__ = "customers"
    __table_args__ = (Index("ix_customers_partner_id_created_at", "partner_id", "created_at"),)

    external_id: Mapped[str] = mapped_column(String(128), nullable=False, unique=True)
    email: Mapped[str] = mapped_column(String(254), nullable=False, default="")
    program_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("programs.id"), nullable=True)
    partner_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("partners.id"), nullable=True)
    attributed_via: Mapped[str | None] = mapped_column(
        String(16), nullable=True
    )  # click | referral_code | coupon | admin
    click_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    attributed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    signup_ip_hash: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    first_purchase_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    welcome_reward_given_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
