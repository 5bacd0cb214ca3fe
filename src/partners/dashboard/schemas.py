"""The partner dashboard's words. Money is integer minor units with its currency; rates are basis points."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field


class PeriodOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    start: date = Field(serialization_alias="from")
    end: date = Field(serialization_alias="to")
    days: int


class AmountOut(BaseModel):
    currency: str
    amount: int


class RevenueOut(BaseModel):
    """Purchases of the partner's own (level-1) customers: gross, refunded and net of refunds."""

    currency: str
    purchases: int
    gross: int
    refunded: int
    net: int


class CommissionsByStatusOut(BaseModel):
    """The partner's commissions (all levels) on sales in the period, by status: `amount` earned,
    `reversed` taken back since by refunds, chargebacks or rejections, `net` = amount - reversed."""

    status: str
    currency: str
    count: int
    amount: int
    reversed: int
    net: int


class BalanceOut(BaseModel):
    """Ledger balances now: `available` is approved and payable (may be negative after a clawback), `pending`
    is still inside its hold period."""

    currency: str
    available: int
    pending: int


class TierOut(BaseModel):
    id: int
    key: str
    name: str
    rank: int


class RatesOut(BaseModel):
    level1_rate_bps: int
    level2_rate_bps: int
    level3_rate_bps: int
    base_rate_bps: int
    ceiling_rate_bps: int
    hold_days: int
    monthly_revenue: int
    currency: str
    overridden: bool


class RequirementOut(BaseModel):
    metric: str  # revenue | active_customers | referrals
    current: int
    required: int
    met: bool


class TierProgressOut(BaseModel):
    """How far the partner is from the next tier's promotion rule (None: no tier to be promoted into)."""

    next_tier: TierOut | None
    window_days: int
    requirements: list[RequirementOut]
    eligible: bool


class DayOut(BaseModel):
    date: date
    clicks: int  # human clicks
    conversions: int  # purchases of the partner's own customers
    earnings: dict[str, int]  # currency -> net commissions (all levels) on that day's sales


class DashboardOut(BaseModel):
    partner_id: int
    period: PeriodOut
    clicks: int
    unique_clicks: int
    bot_clicks: int
    signups: int
    customers: int
    conversion_rate_bps: int
    epc: list[AmountOut]
    revenue: list[RevenueOut]
    commissions: list[CommissionsByStatusOut]
    balances: list[BalanceOut]
    tier: TierOut
    rates: RatesOut
    progress: TierProgressOut
    series: list[DayOut]
