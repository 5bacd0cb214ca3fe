"""Programs and their tiers. Rates are integer basis points (1% = 100 bps): exact on both engines."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from partners.db.base import Base, CreatedAtMixin, IdMixin
from partners.db.types import BigId, Currency


class Program(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "programs"

    slug: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    currency: Mapped[str] = mapped_column(Currency(), nullable=False, default="USD")
    is_default: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    # attribution
    cookie_window_days: Mapped[int] = mapped_column(Integer, nullable=False, default=30)
    attribution_model: Mapped[str] = mapped_column(String(16), nullable=False, default="last_click")
    allowed_destination_hosts: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    # where a partner's plain referral link (/r/<referral code>) lands
    landing_url: Mapped[str] = mapped_column(String(2000), nullable=False, default="https://namaskah.app/")
    # onboarding
    auto_approve: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    auto_approve_countries: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    # partners enrolled by the host (already its customers) are approved at once unless this is off
    host_enrol_auto_approve: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    new_partner_extra_hold_days: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    new_partner_period_days: Mapped[int] = mapped_column(Integer, nullable=False, default=90)
    # double-sided rewards: none | credits (value: minor units) | discount_percent (value: bps, 1st purchase)
    welcome_reward_kind: Mapped[str] = mapped_column(String(24), nullable=False, default="none")
    welcome_reward_value: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # payouts (issue 4): monthly | quarterly | manual
    payout_schedule: Mapped[str] = mapped_column(String(16), nullable=False, default="monthly")
    payout_day: Mapped[int] = mapped_column(Integer, nullable=False, default=15)
    allow_crypto_payouts: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)


class Tier(IdMixin, CreatedAtMixin, Base):
    """A commission tier.

    `bonus_steps`: [{"threshold": minor units of monthly referred revenue, "rate_bps": n}] lift the
    level-1 rate from `base_rate_bps` towards, never above, `ceiling_rate_bps`.
    `promotion_rule`: {"window_days": 90, "min_revenue": minor, "min_active_customers": n, "min_referrals": n}
    — meeting it promotes a partner into this tier; falling below the current tier's rule demotes."""

    __tablename__ = "tiers"
    __table_args__ = (UniqueConstraint("program_id", "key"),)

    program_id: Mapped[int] = mapped_column(BigId, ForeignKey("programs.id"), nullable=False)
    key: Mapped[str] = mapped_column(String(32), nullable=False)  # starter | pro | enterprise | whitelabel
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    rank: Mapped[int] = mapped_column(Integer, nullable=False)
    base_rate_bps: Mapped[int] = mapped_column(Integer, nullable=False)
    ceiling_rate_bps: Mapped[int] = mapped_column(Integer, nullable=False)
    level2_rate_bps: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    level3_rate_bps: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    bonus_steps: Mapped[list[dict[str, int]]] = mapped_column(JSON, nullable=False, default=list)
    hold_days: Mapped[int] = mapped_column(Integer, nullable=False, default=30)
    can_recruit: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    features: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    # how long a customer earns commission: lifetime | months | purchases (with commission_duration_value)
    commission_duration: Mapped[str] = mapped_column(String(16), nullable=False, default="lifetime")
    commission_duration_value: Mapped[int | None] = mapped_column(Integer, nullable=True)
    promotion_rule: Mapped[dict[str, int]] = mapped_column(JSON, nullable=False, default=dict)


class PartnerRateOverride(IdMixin, CreatedAtMixin, Base):
    """A negotiated rate for one partner; any rate set here beats the tier's."""

    __tablename__ = "partner_rate_overrides"

    partner_id: Mapped[int] = mapped_column(BigId, ForeignKey("partners.id"), nullable=False, unique=True)
    base_rate_bps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    level2_rate_bps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    level3_rate_bps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    created_by: Mapped[str] = mapped_column(String(64), nullable=False, default="")


class TierChange(IdMixin, CreatedAtMixin, Base):
    """History of a partner's tier: promotions, demotions and admin changes, with the metrics that decided."""

    __tablename__ = "tier_changes"

    partner_id: Mapped[int] = mapped_column(BigId, ForeignKey("partners.id"), nullable=False, index=True)
    from_tier_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("tiers.id"), nullable=True)
    to_tier_id: Mapped[int] = mapped_column(BigId, ForeignKey("tiers.id"), nullable=False)
    reason: Mapped[str] = mapped_column(String(16), nullable=False)  # promotion | demotion | admin | initial
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    period_key: Mapped[str | None] = mapped_column(String(32), nullable=True)
