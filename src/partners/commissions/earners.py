"""Who earns on a sale, and at which rate: the customer's partner (level 1) and up to two recruiters above it.

The commission engine's hot path reads the whole chain in ONE query — each member with its tier, negotiated
rates, program, whether it accepted its program's current agreement and its earnings_pending account, level 1's
referred revenue of the month (`programs.month_revenue`, from the daily rollups), and the platform's
commission_expense account — instead of a dozen ORM loads; a batch of purchase events reads the chains of all
its sales in one query (`load_chains`; benchmark 2, bench/README.md). The rules are those of
`programs.effective_rates`, `programs.hold_days_for` and `affiliates.can_earn`, and are tested against them:

- a member earns only if approved and its program's current agreement (if any) is accepted;
- level 1 earns its negotiated rate, else its tier's base rate lifted by the bonus steps its referred revenue
  of the month reached (never above the ceiling); levels 2/3 earn their own level-2/3 rate (negotiated or the
  tier's), only if their tier may recruit;
- the hold is the tier's, plus the program's extra days while the member is new.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from partners.affiliates.models import AgreementAcceptance, AgreementVersion, Partner
from partners.commissions.accounts import COMMISSION_EXPENSE, EARNINGS_PENDING, PARTNER_OWNER_PREFIX, PLATFORM_OWNER
from partners.commissions.rules import bonus_rate, within_duration
from partners.db import pipeline
from partners.db.session import dialect_name
from partners.db.types import UTCDateTime
from partners.events.models import Purchase
from partners.ledger.models import LedgerAccount
from partners.ledger.schemas import AccountRef
from partners.programs.models import PartnerRateOverride, Program, Tier
from partners.programs.service import RevenueWindow, month_revenue, unwritten_revenue

MAX_LEVELS = 3

_partners = cast(sa.Table, Partner.__table__)
_tiers = cast(sa.Table, Tier.__table__)
_programs = cast(sa.Table, Program.__table__)
_overrides = cast(sa.Table, PartnerRateOverride.__table__)
_versions = cast(sa.Table, AgreementVersion.__table__)
_acceptances = cast(sa.Table, AgreementAcceptance.__table__)
_purchases = cast(sa.Table, Purchase.__table__)
_accounts = cast(sa.Table, LedgerAccount.__table__)


@dataclass(frozen=True, slots=True)
class Member:
    """One partner of the chain, with everything its commission on a sale depends on."""

    level: int
    partner_id: int
    referral_code: str
    can_earn: bool
    since: datetime  # approved (or, never approved, created): when "new partner" holds start
    program_currency: str
    new_partner_period_days: int
    new_partner_extra_hold_days: int
    tier_hold_days: int
    base_rate_bps: int
    ceiling_rate_bps: int
    bonus_steps: list[dict[str, int]]
    negotiated_level1_bps: int | None
    level2_rate_bps: int  # the negotiated rate if there is one, else the tier's
    level3_rate_bps: int
    can_recruit: bool
    commission_duration: str
    commission_duration_value: int | None
    monthly_revenue: int  # level 1 without a negotiated rate: its referred revenue this month before the sale
    pending_account: AccountRef | None  # its earnings_pending account in the sale's currency, if opened yet

    @property
    def rate_bps(self) -> int:
        """What this member earns at its level (0: nothing)."""
        if not self.can_earn:
            return 0
        if self.level == 1:
            if self.negotiated_level1_bps is not None:
                return self.negotiated_level1_bps
            return bonus_rate(self.base_rate_bps, self.ceiling_rate_bps, self.bonus_steps, self.monthly_revenue)
        if not self.can_recruit:
            return 0
        return self.level2_rate_bps if self.level == 2 else self.level3_rate_bps

    def hold_days(self, at: datetime) -> int:
        is_new = at < self.since + timedelta(days=self.new_partner_period_days)
        return self.tier_hold_days + (self.new_partner_extra_hold_days if is_new else 0)


def _account_columns(account: sa.FromClause, prefix: str) -> list[sa.ColumnElement[Any]]:
    return [account.c[name].label(f"{prefix}_{name}") for name in ("id", "may_go_negative", "kept_as_sum")]


_SALE_COLUMNS: tuple[tuple[str, sa.types.TypeEngine[Any]], ...] = (
    ("sale", sa.Integer()),
    ("partner_id", sa.BigInteger()),
    ("currency", sa.String()),
    ("first_day", sa.Date()),
    ("last_day", sa.Date()),
    ("at", UTCDateTime()),
    ("day_end", UTCDateTime()),
)


def _sales(dialect: str, count: int) -> sa.CTE:
    """The sales asked about, one row each: the sale's position, its partner, currency and the `RevenueWindow`
    before it. On PostgreSQL from one JSON document (`sales`): the same statement whatever the batch size, so it
    is prepared and parsed once per connection (a statement per batch size took almost a quarter of PostgreSQL's
    statement time under load, bench/README.md; it is still planned at each execution, `db.engine`). On SQLite
    from bound parameters (`sale_<i>`, `partner_id_<i>`, ...: `<column>_<position>`)."""
    if dialect == "postgresql":
        document = sa.cast(sa.bindparam("sales", type_=sa.String), postgresql.JSON)
        given = (
            sa.func.json_to_recordset(document)
            .table_valued(*(sa.column(name, kind) for name, kind in _SALE_COLUMNS))
            .render_derived(name="given", with_types=True)
        )
        return sa.select(*given.c).cte("sales")
    rows = [
        sa.select(*(sa.bindparam(f"{name}_{i}", type_=kind).label(name) for name, kind in _SALE_COLUMNS))
        for i in range(count)
    ]
    return (rows[0] if count == 1 else sa.union_all(*rows)).cte("sales")


def _sales_parameters(dialect: str, sales: list[dict[str, Any]]) -> dict[str, Any]:
    if dialect == "postgresql":
        return {"sales": orjson.dumps(sales).decode()}
    return {f"{name}_{i}": value for i, sale in enumerate(sales) for name, value in sale.items()}


@functools.cache
def _chain_query(dialect: str, count: int) -> sa.Select[Any]:
    """The chains of `count` sales (level 1: the sale's partner, then its recruiters), one row per sale and
    level, in sale then level order; with level 1's referred revenue in [the sale's month start, its time) and
    the ledger accounts the sale posts to in its currency. Built once per batch size (once on PostgreSQL)."""
    sales = _sales(dialect, count)
    level1 = sa.literal(1, sa.Integer).label("level")
    anchor = sa.select(sales.c.sale, _partners.c.id.label("partner_id"), level1, _partners.c.parent_id).join_from(
        sales, _partners, _partners.c.id == sales.c.partner_id
    )
    chain = anchor.cte("chain", recursive=True)
    above = _partners.alias("above")
    chain = chain.union_all(
        sa.select(chain.c.sale, above.c.id, chain.c.level + 1, above.c.parent_id).where(
            above.c.id == chain.c.parent_id, chain.c.level < MAX_LEVELS
        )
    )
    member = _partners.alias("member")
    current_agreement = (
        sa.select(_versions.c.id)
        .where(_versions.c.program_id == member.c.program_id)
        .order_by(_versions.c.version.desc())
        .limit(1)
        .correlate(member)  # also inside `accepted`'s EXISTS, one level further down
        .scalar_subquery()
    )
    accepted = sa.exists().where(
        _acceptances.c.partner_id == member.c.id, _acceptances.c.agreement_version_id == current_agreement
    )
    needs_revenue = sa.and_(chain.c.level == 1, _overrides.c.base_rate_bps.is_(None))
    revenue = month_revenue(
        member.c.id,
        _programs.c.currency,
        first_day=sales.c.first_day,
        last_day=sales.c.last_day,
        at=sales.c.at,
        day_end=sales.c.day_end,
    )
    pending = _accounts.alias("pending")
    expense = _accounts.alias("expense")
    return (
        sa.select(
            chain.c.sale,
            chain.c.level,
            member.c.id,
            member.c.referral_code,
            member.c.status,
            sa.func.coalesce(member.c.approved_at, member.c.created_at).label("since"),
            current_agreement.label("agreement_id"),
            accepted.label("accepted"),
            _programs.c.currency,
            _programs.c.new_partner_period_days,
            _programs.c.new_partner_extra_hold_days,
            _tiers.c.hold_days,
            _tiers.c.base_rate_bps,
            _tiers.c.ceiling_rate_bps,
            _tiers.c.bonus_steps,
            _overrides.c.base_rate_bps.label("negotiated_level1_bps"),
            sa.func.coalesce(_overrides.c.level2_rate_bps, _tiers.c.level2_rate_bps).label("level2_rate_bps"),
            sa.func.coalesce(_overrides.c.level3_rate_bps, _tiers.c.level3_rate_bps).label("level3_rate_bps"),
            _tiers.c.can_recruit,
            _tiers.c.commission_duration,
            _tiers.c.commission_duration_value,
            sa.case((needs_revenue, revenue), else_=0).label("monthly_revenue"),
            *_account_columns(pending, "pending"),
            *_account_columns(expense, "expense"),
        )
        .select_from(chain)
        .join(sales, sales.c.sale == chain.c.sale)
        .join(member, member.c.id == chain.c.partner_id)
        .join(_tiers, _tiers.c.id == member.c.tier_id)
        .join(_programs, _programs.c.id == member.c.program_id)
        .outerjoin(_overrides, _overrides.c.partner_id == member.c.id)
        .outerjoin(
            pending,
            sa.and_(
                pending.c.owner == sa.literal(PARTNER_OWNER_PREFIX) + sa.cast(member.c.id, sa.String),
                pending.c.kind == EARNINGS_PENDING,
                pending.c.currency == sales.c.currency,
            ),
        )
        .outerjoin(
            expense,
            sa.and_(
                expense.c.owner == PLATFORM_OWNER,
                expense.c.kind == COMMISSION_EXPENSE,
                expense.c.currency == sales.c.currency,
            ),
        )
        .order_by(chain.c.sale, chain.c.level)
    )


@dataclass(frozen=True, slots=True)
class Chain:
    members: list[Member]  # level 1 first
    expense_account: AccountRef | None  # commission_expense in the sale's currency, if opened yet


def _account(row: Any, prefix: str, kind: str, currency: str) -> AccountRef | None:
    account_id = getattr(row, f"{prefix}_id")
    if account_id is None:
        return None
    return AccountRef(
        id=account_id,
        kind=kind,
        currency=currency,
        may_go_negative=bool(getattr(row, f"{prefix}_may_go_negative")),
        kept_as_sum=bool(getattr(row, f"{prefix}_kept_as_sum")),
    )


def _member(row: Any, currency: str, unwritten: int) -> Member:
    return Member(
        level=row.level,
        partner_id=row.id,
        referral_code=row.referral_code,
        can_earn=row.status == "approved" and (row.agreement_id is None or bool(row.accepted)),
        since=row.since,
        program_currency=row.currency,
        new_partner_period_days=row.new_partner_period_days,
        new_partner_extra_hold_days=row.new_partner_extra_hold_days,
        tier_hold_days=row.hold_days,
        base_rate_bps=row.base_rate_bps,
        ceiling_rate_bps=row.ceiling_rate_bps,
        bonus_steps=row.bonus_steps,
        negotiated_level1_bps=row.negotiated_level1_bps,
        level2_rate_bps=row.level2_rate_bps,
        level3_rate_bps=row.level3_rate_bps,
        can_recruit=bool(row.can_recruit),
        commission_duration=row.commission_duration,
        commission_duration_value=row.commission_duration_value,
        monthly_revenue=int(row.monthly_revenue or 0) + unwritten,
        pending_account=_account(row, "pending", EARNINGS_PENDING, currency),
    )


# The chain query's joins are written in the order it should run them (the sales, their partners, then what
# each partner's row points to). Searching the join orders of its 8 relations took 1.7 ms of planning per
# batch, a third of PostgreSQL's statement time at 8 clients (each execution is planned, `db.engine`); in the
# written order, 0.5 ms (bench/README.md, round 5). For the rest of the unit of work, which runs inserts,
# updates and lookups of one or two tables.
_JOINS_AS_WRITTEN = sa.text("SET LOCAL join_collapse_limit = 1")


async def load_chains(session: AsyncSession, sales: Sequence[tuple[int, str, datetime]]) -> list[Chain]:
    """For each sale (level-1 partner id, currency, time): that partner and up to MAX_LEVELS - 1 recruiters
    above it, in one query for all the sales."""
    if not sales:
        return []
    windows = [RevenueWindow.before(at) for _, _, at in sales]
    given = [
        {"sale": i, "partner_id": partner_id, "currency": currency.upper(), **window.parameters()}
        for i, ((partner_id, currency, _), window) in enumerate(zip(sales, windows, strict=True))
    ]
    dialect = dialect_name(session)
    query = _chain_query(dialect, 0 if dialect == "postgresql" else len(sales))
    if dialect == "postgresql":
        await pipeline.run_later(session, _JOINS_AS_WRITTEN)  # reaches PostgreSQL just before the query
    rows_of: list[list[Any]] = [[] for _ in sales]
    for row in await session.execute(query, _sales_parameters(dialect, given)):
        rows_of[row.sale].append(row)
    chains = []
    for (_, currency, _), window, rows in zip(sales, windows, rows_of, strict=True):
        currency = currency.upper()
        members = [_member(row, currency, _unwritten(session, row, window)) for row in rows]
        expense = _account(rows[0], "expense", COMMISSION_EXPENSE, currency) if rows else None
        chains.append(Chain(members, expense))
    return chains


def _unwritten(session: AsyncSession, row: Any, window: RevenueWindow) -> int:
    """Level 1's revenue of the month in rollup deltas the unit of work has not written yet (`unwritten_revenue`)."""
    if row.level != 1 or row.negotiated_level1_bps is not None:
        return 0
    return unwritten_revenue(session, row.id, row.currency, window)


async def load_chain(session: AsyncSession, partner_id: int, *, currency: str, at: datetime) -> Chain:
    """The partner (level 1) and up to MAX_LEVELS - 1 recruiters above it, for a sale in `currency` at `at`."""
    [chain] = await load_chains(session, [(partner_id, currency, at)])
    return chain


@dataclass(frozen=True, slots=True)
class Sale:
    """What the commission engine needs of a purchase."""

    purchase_id: int
    external_id: str
    customer_id: int
    partner_id: int  # the customer's partner: level 1
    amount: int
    currency: str
    occurred_at: datetime
    first_purchase_at: datetime  # the customer's first purchase, this one included
    recorded_at: datetime  # when the platform received it: the commissions' creation, their hold starts


@dataclass(frozen=True, slots=True)
class Earner:
    partner_id: int
    level: int
    rate_bps: int
    hold_days: int


_PURCHASE_INDEX = (
    sa.select(sa.func.count())
    .select_from(_purchases)
    .where(_purchases.c.customer_id == sa.bindparam("customer_id"), _purchases.c.id <= sa.bindparam("purchase_id"))
)


async def still_pays(session: AsyncSession, level1: Member, sale: Sale) -> bool:
    """Whether the customer still earns its partner commission (the level-1 tier's duration rule)."""
    if level1.commission_duration == "lifetime":
        return True
    index = 0
    if level1.commission_duration == "purchases":
        found = await session.scalar(
            _PURCHASE_INDEX, {"customer_id": sale.customer_id, "purchase_id": sale.purchase_id}
        )
        index = int(found or 0)
    return within_duration(
        level1.commission_duration, level1.commission_duration_value, sale.first_purchase_at, index, sale.occurred_at
    )


def earners(chain: Chain, sale: Sale) -> list[Earner]:
    """The members that earn on the sale, with their rate and hold (rate > 0 only)."""
    rated = [(member, member.rate_bps) for member in chain.members[:MAX_LEVELS]]
    return [
        Earner(member.partner_id, member.level, rate, member.hold_days(sale.occurred_at))
        for member, rate in rated
        if rate > 0
    ]
