"""Read-only figures for the staff console that no domain service offers yet: programme-wide totals over a
period, a daily series for the overview chart, the top partners, partner search, and display names.

Plain aggregate reads (no business rule is decided here); each is one query. A later analytics domain can
take them over.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from partners.affiliates.models import Partner
from partners.audit.models import AuditEntry
from partners.commissions.models import Commission
from partners.dashboard.service import Window
from partners.db.session import dialect_name
from partners.disputes.models import WAITING_ON_STAFF, Dispute
from partners.events.models import Purchase
from partners.identity.models import StaffUser
from partners.payouts.models import Payout
from partners.programs.models import Tier

Money = dict[str, int]  # currency -> minor units


def _utc_day(session: AsyncSession, column: Any) -> Any:
    if dialect_name(session) == "postgresql":
        return sa.cast(sa.func.timezone("UTC", column), sa.Date)
    return sa.func.date(column)


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _in(column: Any, window: Window) -> list[Any]:
    return [column >= window.start, column < window.end]


@dataclass(frozen=True, slots=True)
class Overview:
    revenue: Money  # referred purchases in the period, net of refunds
    commissions_created: Money  # commissions on the period's sales, net of reversals
    owed_pending: Money  # in the hold period now (all time)
    owed_approved: Money  # approved and not yet paid now (all time)
    payouts_paid: Money  # paid in the period
    payouts_waiting: Money  # requested, not paid yet
    partners_by_status: dict[str, int]
    open_disputes: int
    disputes_waiting: int


async def _money(session: AsyncSession, query: Any) -> Money:
    return {currency: int(amount or 0) for currency, amount in (await session.execute(query)).all()}


async def overview(session: AsyncSession, window: Window) -> Overview:
    net_sale = Purchase.amount - Purchase.refunded_amount
    net_commission = Commission.amount - Commission.reversed_amount
    revenue = await _money(
        session,
        sa.select(Purchase.currency, sa.func.sum(net_sale))
        .where(Purchase.partner_id.is_not(None), *_in(Purchase.occurred_at, window))
        .group_by(Purchase.currency),
    )
    created = await _money(
        session,
        sa.select(Commission.currency, sa.func.sum(net_commission))
        .join(Purchase, Purchase.id == Commission.purchase_id)
        .where(*_in(Purchase.occurred_at, window))
        .group_by(Commission.currency),
    )
    owed = await session.execute(
        sa.select(Commission.status, Commission.currency, sa.func.sum(net_commission))
        .where(Commission.status.in_(("pending", "approved")))
        .group_by(Commission.status, Commission.currency)
    )
    owed_by: dict[str, Money] = defaultdict(dict)
    for status, currency, amount in owed.all():
        owed_by[status][currency] = int(amount or 0)
    paid = await _money(
        session,
        sa.select(Payout.currency, sa.func.sum(Payout.amount))
        .where(Payout.status == "paid", *_in(Payout.paid_at, window))
        .group_by(Payout.currency),
    )
    waiting = await _money(
        session,
        sa.select(Payout.currency, sa.func.sum(Payout.amount))
        .where(Payout.status.in_(("pending", "processing")))
        .group_by(Payout.currency),
    )
    statuses = await session.execute(sa.select(Partner.status, sa.func.count()).group_by(Partner.status))
    disputes = await session.execute(
        sa.select(
            sa.func.count().filter(Dispute.status.not_in(("accepted", "rejected"))),
            sa.func.count().filter(Dispute.status.in_(WAITING_ON_STAFF)),
        )
    )
    open_disputes, waiting_on_staff = disputes.one()
    return Overview(
        revenue=revenue,
        commissions_created=created,
        owed_pending=owed_by.get("pending", {}),
        owed_approved=owed_by.get("approved", {}),
        payouts_paid=paid,
        payouts_waiting=waiting,
        partners_by_status={status: int(count) for status, count in statuses.all()},
        open_disputes=int(open_disputes or 0),
        disputes_waiting=int(waiting_on_staff or 0),
    )


async def daily_series(session: AsyncSession, window: Window, currency: str) -> dict[str, dict[date, int]]:
    """Per UTC day, in `currency`: referred revenue (net), commissions on that day's sales, payouts paid."""
    sale_day = _utc_day(session, Purchase.occurred_at)
    revenue = await session.execute(
        sa.select(sale_day, sa.func.sum(Purchase.amount - Purchase.refunded_amount))
        .where(Purchase.partner_id.is_not(None), Purchase.currency == currency, *_in(Purchase.occurred_at, window))
        .group_by(sale_day)
    )
    commissions = await session.execute(
        sa.select(sale_day, sa.func.sum(Commission.amount - Commission.reversed_amount))
        .join(Purchase, Purchase.id == Commission.purchase_id)
        .where(Commission.currency == currency, *_in(Purchase.occurred_at, window))
        .group_by(sale_day)
    )
    paid_day = _utc_day(session, Payout.paid_at)
    payouts = await session.execute(
        sa.select(paid_day, sa.func.sum(Payout.amount))
        .where(Payout.status == "paid", Payout.currency == currency, *_in(Payout.paid_at, window))
        .group_by(paid_day)
    )
    return {
        "revenue": {_as_date(day): int(amount or 0) for day, amount in revenue.all()},
        "commissions": {_as_date(day): int(amount or 0) for day, amount in commissions.all()},
        "payouts": {_as_date(day): int(amount or 0) for day, amount in payouts.all()},
    }


@dataclass(frozen=True, slots=True)
class TopPartner:
    id: int
    name: str
    customers: int
    revenue: int


async def top_partners(session: AsyncSession, window: Window, currency: str, limit: int = 5) -> list[TopPartner]:
    rows = await session.execute(
        sa.select(
            Partner.id,
            Partner.name,
            sa.func.count(sa.distinct(Purchase.customer_id)),
            sa.func.sum(Purchase.amount - Purchase.refunded_amount),
        )
        .join(Purchase, Purchase.partner_id == Partner.id)
        .where(
            Purchase.currency == currency,
            Purchase.refunded_amount < Purchase.amount,  # paying customers, as on the dashboard
            *_in(Purchase.occurred_at, window),
        )
        .group_by(Partner.id, Partner.name)
        .order_by(sa.func.sum(Purchase.amount - Purchase.refunded_amount).desc())
        .limit(limit)
    )
    return [TopPartner(int(i), name, int(c), int(r or 0)) for i, name, c, r in rows.all()]


@dataclass(frozen=True, slots=True)
class PartnerRow:
    partner: Partner
    tier: str


async def search_partners(
    session: AsyncSession, *, query: str, status: str | None, limit: int, offset: int
) -> tuple[list[PartnerRow], int]:
    """Partners whose name, email or referral code contains `query` (any case), newest first."""
    select = sa.select(Partner, Tier.name).join(Tier, Tier.id == Partner.tier_id)
    if query:
        pattern = f"%{query.lower()}%"
        select = select.where(
            sa.or_(
                sa.func.lower(Partner.name).like(pattern),
                Partner.email.like(pattern),
                Partner.referral_code.like(pattern),
            )
        )
    if status:
        select = select.where(Partner.status == status)
    total = await session.scalar(sa.select(sa.func.count()).select_from(select.subquery()))
    rows = await session.execute(select.order_by(Partner.id.desc()).limit(limit).offset(offset))
    return [PartnerRow(partner, tier) for partner, tier in rows.all()], int(total or 0)


async def partner_names(session: AsyncSession, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await session.execute(sa.select(Partner.id, Partner.name).where(Partner.id.in_(ids)))
    return {int(partner_id): name for partner_id, name in rows.all()}


async def staff_names(session: AsyncSession) -> dict[str, str]:
    """Staff display names by the id audit entries carry (a string)."""
    rows = await session.execute(sa.select(StaffUser.id, StaffUser.name))
    return {str(user_id): name for user_id, name in rows.all()}


async def recent_audit(
    session: AsyncSession, *, limit: int, subject_type: str | None = None, actions: tuple[str, ...] = ()
) -> list[AuditEntry]:
    query = sa.select(AuditEntry)
    if subject_type:
        query = query.where(AuditEntry.subject_type == subject_type)
    if actions:
        query = query.where(AuditEntry.action.in_(actions))
    return list(await session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit)))


def days_of(window: Window) -> list[date]:
    return [window.first + timedelta(days=offset) for offset in range(window.days)]


def since(moment: datetime, days: int) -> datetime:
    return moment - timedelta(days=days)
