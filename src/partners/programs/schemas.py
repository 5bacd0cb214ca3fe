"""The programs admin API's words."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Bps = Field(ge=0, le=10_000)
OptionalBps = Field(default=None, ge=0, le=10_000)
AttributionModel = Literal["first_click", "last_click"]
WelcomeReward = Literal["none", "credits", "discount_percent"]
PayoutSchedule = Literal["monthly", "quarterly", "manual"]
Duration = Literal["lifetime", "months", "purchases"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ProgramFields(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    is_default: bool | None = None
    active: bool | None = None
    cookie_window_days: int | None = Field(default=None, ge=1, le=3650)
    attribution_model: AttributionModel | None = None
    allowed_destination_hosts: list[str] | None = None
    auto_approve: bool | None = None
    auto_approve_countries: list[str] | None = None
    host_enrol_auto_approve: bool | None = None
    new_partner_extra_hold_days: int | None = Field(default=None, ge=0, le=365)
    new_partner_period_days: int | None = Field(default=None, ge=0, le=3650)
    welcome_reward_kind: WelcomeReward | None = None
    welcome_reward_value: int | None = Field(default=None, ge=0)
    payout_schedule: PayoutSchedule | None = None
    payout_day: int | None = Field(default=None, ge=1, le=28)
    allow_crypto_payouts: bool | None = None

    def changes(self) -> dict[str, Any]:
        return {key: value for key, value in self.model_dump(exclude_unset=True).items() if value is not None}


class ProgramCreate(ProgramFields):
    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")
    name: str = Field(min_length=1, max_length=200)
    currency: str = Field(pattern=r"^[A-Za-z]{3}$")
    with_default_tiers: bool = True


class ProgramUpdate(ProgramFields):
    pass


class ProgramOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    slug: str
    name: str
    currency: str
    is_default: bool
    active: bool
    cookie_window_days: int
    attribution_model: str
    allowed_destination_hosts: list[str]
    auto_approve: bool
    auto_approve_countries: list[str]
    host_enrol_auto_approve: bool
    new_partner_extra_hold_days: int
    new_partner_period_days: int
    welcome_reward_kind: str
    welcome_reward_value: int
    payout_schedule: str
    payout_day: int
    allow_crypto_payouts: bool
    created_at: datetime


class BonusStep(Strict):
    threshold: int = Field(ge=0)
    rate_bps: int = Bps


class PromotionRule(Strict):
    window_days: int | None = Field(default=None, ge=1, le=3650)
    min_revenue: int | None = Field(default=None, ge=0)
    min_active_customers: int | None = Field(default=None, ge=0)
    min_referrals: int | None = Field(default=None, ge=0)

    def as_rule(self) -> dict[str, int]:
        return {key: value for key, value in self.model_dump().items() if value is not None}


class TierFields(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    rank: int | None = Field(default=None, ge=0)
    base_rate_bps: int | None = OptionalBps
    ceiling_rate_bps: int | None = OptionalBps
    level2_rate_bps: int | None = OptionalBps
    level3_rate_bps: int | None = OptionalBps
    bonus_steps: list[BonusStep] | None = None
    hold_days: int | None = Field(default=None, ge=0, le=365)
    can_recruit: bool | None = None
    features: dict[str, Any] | None = None
    commission_duration: Duration | None = None
    commission_duration_value: int | None = Field(default=None, ge=1)
    promotion_rule: PromotionRule | None = None

    def changes(self) -> dict[str, Any]:
        """The fields sent, in the model's shape (steps and rule as plain dicts)."""
        values = {
            key: value
            for key, value in self.model_dump(exclude_unset=True).items()
            if value is not None or key == "commission_duration_value"
        }
        if self.bonus_steps is not None:
            values["bonus_steps"] = [step.model_dump() for step in self.bonus_steps]
        if self.promotion_rule is not None:
            values["promotion_rule"] = self.promotion_rule.as_rule()
        return values


class TierCreate(TierFields):
    key: str = Field(pattern=r"^[a-z0-9_-]{1,32}$")
    name: str = Field(min_length=1, max_length=100)
    rank: int = Field(ge=0)
    base_rate_bps: int = Bps
    ceiling_rate_bps: int = Bps
    level2_rate_bps: int = Field(default=0, ge=0, le=10_000)
    level3_rate_bps: int = Field(default=0, ge=0, le=10_000)
    bonus_steps: list[BonusStep] = Field(default_factory=list)
    hold_days: int = Field(default=30, ge=0, le=365)
    can_recruit: bool = True
    features: dict[str, Any] = Field(default_factory=dict)
    commission_duration: Duration = "lifetime"
    promotion_rule: PromotionRule = Field(default_factory=PromotionRule)

    def values(self) -> dict[str, Any]:
        values = self.model_dump()
        values["bonus_steps"] = [step.model_dump() for step in self.bonus_steps]
        values["promotion_rule"] = self.promotion_rule.as_rule()
        return values


class TierUpdate(TierFields):
    pass


class TierOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    program_id: int
    key: str
    name: str
    rank: int
    base_rate_bps: int
    ceiling_rate_bps: int
    level2_rate_bps: int
    level3_rate_bps: int
    bonus_steps: list[dict[str, int]]
    hold_days: int
    can_recruit: bool
    features: dict[str, Any]
    commission_duration: str
    commission_duration_value: int | None
    promotion_rule: dict[str, int]


class OverrideIn(Strict):
    base_rate_bps: int | None = OptionalBps
    level2_rate_bps: int | None = OptionalBps
    level3_rate_bps: int | None = OptionalBps
    reason: str = Field(min_length=1, max_length=500)


class OverrideOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    partner_id: int
    base_rate_bps: int | None
    level2_rate_bps: int | None
    level3_rate_bps: int | None
    reason: str
    created_by: str
    created_at: datetime


class ClearOverrideIn(Strict):
    reason: str = Field(default="", max_length=500)


class TierAssignIn(Strict):
    tier_id: int
    reason: str = Field(default="", max_length=500)


class TierChangeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    partner_id: int
    from_tier_id: int | None
    to_tier_id: int
    reason: str
    metrics: dict[str, Any]
    period_key: str | None
    created_at: datetime


class EffectiveRatesOut(BaseModel):
    tier_id: int
    tier_key: str
    level1_rate_bps: int
    level2_rate_bps: int
    level3_rate_bps: int
    hold_days: int
    base_rate_bps: int
    ceiling_rate_bps: int
    monthly_revenue: int
    currency: str
    overridden: bool
