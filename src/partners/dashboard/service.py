"""A partner's dashboard over a period, read from the daily rollups (`partners.rollups`, kept in step with the
raw tables in the same transactions): a few hundred rows for a year, whatever the partner's volume. Distinct
counts (unique clicks, paying customers) come from the rollups' last-seen histograms when the period ends on or
after the last day anyone was seen (periods ending today); otherwise from the raw tables.

Definitions (a period is whole UTC days, `from` and `to` included):
- clicks: human clicks; `bot_clicks` are counted apart; `unique_clicks`: distinct hashed IPs of human clicks;
- signups: customers attributed to the partner in the period;
- customers: distinct paying customers of the partner (level 1): with a purchase in the period not wholly
  refunded (the tier rules' active customers);
- conversion rate: customers / unique clicks, in basis points, round half even;
- EPC: the partner's own (level-1) net commissions on the period's sales per human click, per currency, minor
  units, round half even;
- revenue: the partner's customers' purchases in the period, per currency (gross, refunded, net);
- commissions: the partner's commissions at every level on sales made in the period (by the purchase's time),
  per status and currency; the daily series' earnings are the same, net, by the sale's day;
- balances: the ledger now (earnings_available, earnings_pending), per currency;
- tier progress: the next tier's promotion rule against the partner's metrics over the rule's window.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from partners.affiliates.models import Partner
from partners.commissions.accounts import EARNINGS_AVAILABLE, EARNINGS_PENDING, partner_owner
from partners.commissions.rules import BPS_SCALE, round_half_even_div
from partners.dashboard.schemas import (
    AmountOut,
    BalanceOut,
    CommissionsByStatusOut,
    DashboardOut,
    DayOut,
    PeriodOut,
    RatesOut,
    RequirementOut,
    RevenueOut,
    TierOut,
    TierProgressOut,
)
from partners.db.types import start_of_utc_day
from partners.kit.errors import Unprocessable
from partners.ledger import service as ledger
from partners.programs import service as programs
from partners.programs.models import Program, Tier
from partners.programs.rules import rule_met, window_days
from partners.rollups import service as rollups
from partners.tracking.models import Click

PERIOD_DAYS = {"7d": 7, "30d": 30, "90d": 90, "365d": 365}
DEFAULT_PERIOD = "30d"
MAX_DAYS = 366


@dataclass(frozen=True, slots=True)
class Window:
    """Whole UTC days from `first` to `last`, both included."""

    first: date
    last: date

    @property
    def start(self) -> datetime:
        return start_of_utc_day(self.first)

    @property
    def end(self) -> datetime:
        return start_of_utc_day(self.last + timedelta(days=1))

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


def resolve_window(*, first: date | None, last: date | None, period: str | None, today: date) -> Window:
    """`from`/`to` win over `period`; `to` defaults to today, `from` to `period` (30 days) before `to`."""
    if period is not None and period not in PERIOD_DAYS:
        raise Unprocessable(f"period is one of {', '.join(PERIOD_DAYS)}", field="period")
    last = last or today
    first = first or last - timedelta(days=PERIOD_DAYS[period or DEFAULT_PERIOD] - 1)
    if first > last:
        raise Unprocessable("from is after to", field="from")
    if (last - first).days + 1 > MAX_DAYS:
        raise Unprocessable(f"a period is at most {MAX_DAYS} days", field="from")
    return Window(first, last)


# --- distinct counts the rollups cannot answer (periods ending before someone's last visit or sale) ------


async def _unique_clicks(session: AsyncSession, partner_id: int, window: Window) -> int:
    count = await session.scalar(
        sa.select(sa.func.count(sa.distinct(Click.ip_hash))).where(
            Click.partner_id == partner_id,
            sa.not_(Click.is_bot),
            Click.occurred_at >= window.start,
            Click.occurred_at < window.end,
        )
    )
    return int(count or 0)


# --- the pieces, from the rollups ----------------------------------------------------------------------


def _revenue(period: rollups.PartnerPeriod) -> list[RevenueOut]:
    return [
        RevenueOut(
            currency=row.currency,
            purchases=row.purchases,
            gross=row.gross,
            refunded=row.refunded,
            net=row.gross - row.refunded,
        )
        for row in sorted(period.revenue, key=lambda row: row.currency)
    ]


def _commissions_by_status(period: rollups.PartnerPeriod) -> list[CommissionsByStatusOut]:
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for row in period.commissions:
        total = totals[(row.status, row.currency)]
        total[0] += row.count
        total[1] += row.amount
        total[2] += row.reversed
    return [
        CommissionsByStatusOut(
            status=status,
            currency=currency,
            count=count,
            amount=amount,
            reversed=reversed_amount,
            net=amount - reversed_amount,
        )
        for (status, currency), (count, amount, reversed_amount) in sorted(totals.items())
        if count
    ]


def _epc(period: rollups.PartnerPeriod, clicks: int) -> list[AmountOut]:
    """Level-1 net commissions per human click, per currency that has level-1 commissions."""
    earned: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in period.commissions:
        if row.level == 1:
            earned[row.currency][0] += row.count
            earned[row.currency][1] += row.amount - row.reversed
    return [
        AmountOut(currency=currency, amount=round_half_even_div(net, clicks) if clicks else 0)
        for currency, (count, net) in sorted(earned.items())
        if count
    ]


def _series(period: rollups.PartnerPeriod, window: Window) -> list[DayOut]:
    days = [window.first + timedelta(days=offset) for offset in range(window.days)]
    no_clicks = rollups.DayCounts(0, 0, 0)
    return [
        DayOut(
            date=day,
            clicks=period.days.get(day, no_clicks).clicks,
            conversions=period.purchases_by_day.get(day, 0),
            earnings=dict(sorted(period.earnings_by_day.get(day, {}).items())),
        )
        for day in days
    ]


async def _balances(session: AsyncSession, partner_id: int) -> list[BalanceOut]:
    by_currency: dict[str, dict[str, int]] = defaultdict(lambda: {"available": 0, "pending": 0})
    for account, balance in await ledger.owner_balances(session, partner_owner(partner_id)):
        if account.kind == EARNINGS_AVAILABLE:
            by_currency[account.currency]["available"] = balance.available
        elif account.kind == EARNINGS_PENDING:
            by_currency[account.currency]["pending"] = balance.posted
    return [BalanceOut(currency=currency, **values) for currency, values in sorted(by_currency.items())]


def _tier_out(tier: Tier) -> TierOut:
    return TierOut(id=tier.id, key=tier.key, name=tier.name, rank=tier.rank)


def _progress(progress: programs.TierProgress) -> TierProgressOut:
    if progress.next_tier is None or progress.metrics is None:
        return TierProgressOut(next_tier=None, window_days=0, requirements=[], eligible=False)
    rule = progress.requirements
    metrics = progress.metrics
    requirements = [
        RequirementOut(metric=metric, current=value, required=rule[key], met=value >= rule[key])
        for metric, key, value in (
            ("revenue", "min_revenue", metrics.revenue),
            ("active_customers", "min_active_customers", metrics.active_customers),
            ("referrals", "min_referrals", metrics.referrals),
        )
        if key in rule
    ]
    return TierProgressOut(
        next_tier=_tier_out(progress.next_tier),
        window_days=window_days(rule),
        requirements=requirements,
        eligible=rule_met(rule, metrics),
    )


# --- the dashboard -------------------------------------------------------------------------------------


async def partner_dashboard(session: AsyncSession, partner: Partner, window: Window, *, now: datetime) -> DashboardOut:
    period = await rollups.partner_period(session, partner.id, window.first, window.last)
    clicks = sum(day.clicks for day in period.days.values())
    bot_clicks = sum(day.bot_clicks for day in period.days.values())
    unique_clicks = period.visitors
    if unique_clicks is None:
        unique_clicks = await _unique_clicks(session, partner.id, window)
    customers = period.buyers
    if customers is None:
        found = await programs.paying_customers(session, [partner.id], window.first, window.last)
        customers = found.get(partner.id, 0)
    program = await session.get_one(Program, partner.program_id)
    rates = await programs.effective_rates(session, partner, currency=program.currency, at=now)
    progress = await programs.tier_progress(session, partner, now=now)
    return DashboardOut(
        partner_id=partner.id,
        period=PeriodOut(start=window.first, end=window.last, days=window.days),
        clicks=clicks,
        unique_clicks=unique_clicks,
        bot_clicks=bot_clicks,
        signups=sum(day.signups for day in period.days.values()),
        customers=customers,
        conversion_rate_bps=round_half_even_div(customers * BPS_SCALE, unique_clicks) if unique_clicks else 0,
        epc=_epc(period, clicks),
        revenue=_revenue(period),
        commissions=_commissions_by_status(period),
        balances=await _balances(session, partner.id),
        tier=_tier_out(progress.current),
        rates=RatesOut(
            level1_rate_bps=rates.level1_rate_bps,
            level2_rate_bps=rates.level2_rate_bps,
            level3_rate_bps=rates.level3_rate_bps,
            base_rate_bps=rates.base_rate_bps,
            ceiling_rate_bps=rates.ceiling_rate_bps,
            hold_days=rates.hold_days,
            monthly_revenue=rates.monthly_revenue,
            currency=rates.currency,
            overridden=rates.overridden,
        ),
        progress=_progress(progress),
        series=_series(period, window),
    )
