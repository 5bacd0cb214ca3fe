"""A partner's dashboard over a period: plain aggregate queries, each filtered by the partner's id first so
it runs on the (partner_id, time) indexes. A later issue adds rollups for speed.

Definitions (a period is whole UTC days, `from` and `to` included):
- clicks: human clicks; `bot_clicks` are counted apart; `unique_clicks`: distinct hashed IPs of human clicks;
- signups: customers attributed to the partner in the period;
- customers: distinct customers of the partner (level 1) with a purchase in the period;
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
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from partners.affiliates.models import Partner
from partners.commissions.accounts import EARNINGS_AVAILABLE, EARNINGS_PENDING, partner_owner
from partners.commissions.models import Commission
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
from partners.events.models import Purchase
from partners.kit.errors import Unprocessable
from partners.ledger import service as ledger
from partners.programs import service as programs
from partners.programs.models import Program, Tier
from partners.programs.rules import rule_met, window_days
from partners.tracking.models import Click, Customer

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
        return datetime.combine(self.first, time(), tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time(), tzinfo=UTC)

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


def _utc_day(session: AsyncSession, column: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return sa.cast(sa.func.timezone("UTC", column), sa.Date)
    return sa.func.date(column)  # SQLite stores UTC text: its date part is the UTC day


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


# --- the pieces ----------------------------------------------------------------------------------------


async def _click_counts(session: AsyncSession, partner_id: int, window: Window) -> tuple[int, int, int]:
    human = sa.not_(Click.is_bot)
    row = (
        await session.execute(
            sa.select(
                sa.func.count().filter(human),
                sa.func.count(sa.distinct(sa.case((human, Click.ip_hash)))),
                sa.func.count().filter(Click.is_bot),
            ).where(
                Click.partner_id == partner_id,
                Click.occurred_at >= window.start,
                Click.occurred_at < window.end,
            )
        )
    ).one()
    return int(row[0]), int(row[1]), int(row[2])


async def _signups(session: AsyncSession, partner_id: int, window: Window) -> int:
    count = await session.scalar(
        sa.select(sa.func.count()).where(
            Customer.partner_id == partner_id,
            Customer.attributed_at >= window.start,
            Customer.attributed_at < window.end,
        )
    )
    return int(count or 0)


def _purchases_in(partner_id: int, window: Window) -> list[Any]:
    return [
        Purchase.partner_id == partner_id,
        Purchase.occurred_at >= window.start,
        Purchase.occurred_at < window.end,
    ]


async def _paying_customers(session: AsyncSession, partner_id: int, window: Window) -> int:
    count = await session.scalar(
        sa.select(sa.func.count(sa.distinct(Purchase.customer_id))).where(*_purchases_in(partner_id, window))
    )
    return int(count or 0)


async def _revenue(session: AsyncSession, partner_id: int, window: Window) -> list[RevenueOut]:
    rows = await session.execute(
        sa.select(
            Purchase.currency,
            sa.func.count(),
            sa.func.sum(Purchase.amount),
            sa.func.sum(Purchase.refunded_amount),
        )
        .where(*_purchases_in(partner_id, window))
        .group_by(Purchase.currency)
        .order_by(Purchase.currency)
    )
    return [
        RevenueOut(
            currency=currency,
            purchases=int(count),
            gross=int(gross),
            refunded=int(refunded),
            net=int(gross) - int(refunded),
        )
        for currency, count, gross, refunded in rows.all()
    ]


def _commissions_on_sales_in(partner_id: int, window: Window) -> Any:
    return (
        sa.select()
        .select_from(Commission)
        .join(Purchase, Purchase.id == Commission.purchase_id)
        .where(
            Commission.partner_id == partner_id,
            Purchase.occurred_at >= window.start,
            Purchase.occurred_at < window.end,
        )
    )


async def _commissions_by_status(
    session: AsyncSession, partner_id: int, window: Window
) -> list[CommissionsByStatusOut]:
    query = (
        _commissions_on_sales_in(partner_id, window)
        .add_columns(
            Commission.status,
            Commission.currency,
            sa.func.count(),
            sa.func.sum(Commission.amount),
            sa.func.sum(Commission.reversed_amount),
        )
        .group_by(Commission.status, Commission.currency)
        .order_by(Commission.status, Commission.currency)
    )
    return [
        CommissionsByStatusOut(
            status=status,
            currency=currency,
            count=int(count),
            amount=int(amount),
            reversed=int(reversed_amount),
            net=int(amount) - int(reversed_amount),
        )
        for status, currency, count, amount, reversed_amount in (await session.execute(query)).all()
    ]


async def _epc(session: AsyncSession, partner_id: int, window: Window, clicks: int) -> list[AmountOut]:
    query = (
        _commissions_on_sales_in(partner_id, window)
        .add_columns(Commission.currency, sa.func.sum(Commission.amount - Commission.reversed_amount))
        .where(Commission.level == 1)
        .group_by(Commission.currency)
        .order_by(Commission.currency)
    )
    return [
        AmountOut(currency=currency, amount=round_half_even_div(int(earned), clicks) if clicks else 0)
        for currency, earned in (await session.execute(query)).all()
    ]


async def _balances(session: AsyncSession, partner_id: int) -> list[BalanceOut]:
    by_currency: dict[str, dict[str, int]] = defaultdict(lambda: {"available": 0, "pending": 0})
    for account, balance in await ledger.owner_balances(session, partner_owner(partner_id)):
        if account.kind == EARNINGS_AVAILABLE:
            by_currency[account.currency]["available"] = balance.available
        elif account.kind == EARNINGS_PENDING:
            by_currency[account.currency]["pending"] = balance.posted
    return [BalanceOut(currency=currency, **values) for currency, values in sorted(by_currency.items())]


async def _series(session: AsyncSession, partner_id: int, window: Window) -> list[DayOut]:
    clicks_day = _utc_day(session, Click.occurred_at)
    clicks = await session.execute(
        sa.select(clicks_day, sa.func.count())
        .where(
            Click.partner_id == partner_id,
            sa.not_(Click.is_bot),
            Click.occurred_at >= window.start,
            Click.occurred_at < window.end,
        )
        .group_by(clicks_day)
    )
    sales_day = _utc_day(session, Purchase.occurred_at)
    conversions = await session.execute(
        sa.select(sales_day, sa.func.count()).where(*_purchases_in(partner_id, window)).group_by(sales_day)
    )
    earnings = await session.execute(
        _commissions_on_sales_in(partner_id, window)
        .add_columns(sales_day, Commission.currency, sa.func.sum(Commission.amount - Commission.reversed_amount))
        .group_by(sales_day, Commission.currency)
    )
    clicks_by_day = {_as_date(day): int(count) for day, count in clicks.all()}
    conversions_by_day = {_as_date(day): int(count) for day, count in conversions.all()}
    earnings_by_day: dict[date, dict[str, int]] = defaultdict(dict)
    for day, currency, amount in earnings.all():
        earnings_by_day[_as_date(day)][currency] = int(amount)
    days = [window.first + timedelta(days=offset) for offset in range(window.days)]
    return [
        DayOut(
            date=day,
            clicks=clicks_by_day.get(day, 0),
            conversions=conversions_by_day.get(day, 0),
            earnings=dict(sorted(earnings_by_day.get(day, {}).items())),
        )
        for day in days
    ]


def _tier_out(tier: Tier) -> TierOut:
    return TierOut(id=tier.id, key=tier.key, name=tier.name, rank=tier.rank)


async def _progress(session: AsyncSession, partner: Partner, now: datetime) -> TierProgressOut:
    progress = await programs.tier_progress(session, partner, now=now)
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
    clicks, unique_clicks, bot_clicks = await _click_counts(session, partner.id, window)
    customers = await _paying_customers(session, partner.id, window)
    program = await session.get_one(Program, partner.program_id)
    tier = await programs.get_tier(session, partner.tier_id)
    rates = await programs.effective_rates(session, partner, currency=program.currency, at=now)
    return DashboardOut(
        partner_id=partner.id,
        period=PeriodOut(start=window.first, end=window.last, days=window.days),
        clicks=clicks,
        unique_clicks=unique_clicks,
        bot_clicks=bot_clicks,
        signups=await _signups(session, partner.id, window),
        customers=customers,
        conversion_rate_bps=round_half_even_div(customers * BPS_SCALE, unique_clicks) if unique_clicks else 0,
        epc=await _epc(session, partner.id, window, clicks),
        revenue=await _revenue(session, partner.id, window),
        commissions=await _commissions_by_status(session, partner.id, window),
        balances=await _balances(session, partner.id),
        tier=_tier_out(tier),
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
        progress=await _progress(session, partner, now),
        series=await _series(session, partner.id, window),
    )
