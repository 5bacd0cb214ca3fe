"""The commission lifecycle: created pending at the purchase, approved after the hold, reversed by refunds,
rejected or adjusted by staff. Arithmetic comes from `commissions.rules`; money moves only through the ledger
(accounts in `commissions.accounts`).

- A purchase by an attributed customer pays up to three levels: the customer's partner (level 1), its
  recruiter (level 2) and the recruiter's recruiter (level 3). Each level is paid by the earning partner's own
  rate card (level 1: its effective level-1 rate with bonuses; levels 2/3: its own level-2/3 rate), only if
  that partner can earn (approved, current agreement accepted) and, above level 1, its tier lets it recruit.
  Whether the customer still pays commission at all (lifetime / first N months / first N purchases) is the
  level-1 partner's tier's rule. One ledger transaction per purchase: commission_expense - total, each
  partner's earnings_pending + share.
- A refund reverses `rules.reversal_delta` of each commission: from earnings_pending while pending, from
  earnings_available once approved or paid (a clawback: the balance may go negative; later approvals pay it
  back, since they credit the same account).
- Approval moves amount - reversed_amount from earnings_pending to earnings_available.
- An adjustment is a signed staff correction between commission_expense and the partner's current
  (earnings_available) account.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from partners.affiliates import service as affiliates
from partners.affiliates.models import Partner
from partners.audit.service import Actor, record
from partners.commissions import accounts
from partners.commissions.earners import Chain, Earner, Sale, earners, load_chain, still_pays
from partners.commissions.models import Commission, CommissionAdjustment
from partners.commissions.rules import reversal_delta, split_commissions
from partners.db import bulk, pipeline
from partners.db.session import dialect_name
from partners.events.models import Purchase
from partners.kit.errors import Conflict, NotFound, Unprocessable
from partners.ledger import service as ledger
from partners.ledger.models import LedgerAccount, LedgerTransaction
from partners.ledger.schemas import AccountRef, NewTransaction, Posting
from partners.rollups import service as rollups
from partners.tracking.models import Customer

BLOCKED_PARTNER_STATUSES = ("suspended", "banned")
COMMISSION_KIND = "commission"


# --- reading -------------------------------------------------------------------------------------------


async def get_commission(session: AsyncSession, commission_id: int, *, for_update: bool = False) -> Commission:
    query = sa.select(Commission).where(Commission.id == commission_id)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    commission = await session.scalar(query)
    if commission is None:
        raise NotFound(f"commission {commission_id} not found", field="commission_id")
    return commission


async def commissions_for_purchase(
    session: AsyncSession, purchase_id: int, *, for_update: bool = False
) -> list[Commission]:
    query = sa.select(Commission).where(Commission.purchase_id == purchase_id).order_by(Commission.level)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    return list(await session.scalars(query))


@dataclass(frozen=True, slots=True)
class CommissionFilter:
    partner_id: int | None = None
    purchase_id: int | None = None
    status: str | None = None
    level: int | None = None
    currency: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


def _filtered(query: sa.Select[Commission], where: CommissionFilter) -> sa.Select[Commission]:
    if where.partner_id is not None:
        query = query.where(Commission.partner_id == where.partner_id)
    if where.purchase_id is not None:
        query = query.where(Commission.purchase_id == where.purchase_id)
    if where.status is not None:
        query = query.where(Commission.status == where.status)
    if where.level is not None:
        query = query.where(Commission.level == where.level)
    if where.currency is not None:
        query = query.where(Commission.currency == where.currency.upper())
    if where.created_from is not None:
        query = query.where(Commission.created_at >= where.created_from)
    if where.created_to is not None:
        query = query.where(Commission.created_at < where.created_to)
    return query


async def list_commissions(
    session: AsyncSession, where: CommissionFilter, *, limit: int, offset: int
) -> tuple[list[Commission], int]:
    """A page of commissions, newest first, and how many match in all."""
    query = _filtered(sa.select(Commission), where)
    total = await _count(session, where, query)
    rows = await session.scalars(
        query.order_by(Commission.created_at.desc(), Commission.id.desc()).limit(limit).offset(offset)
    )
    return list(rows), total


async def _count(session: AsyncSession, where: CommissionFilter, query: sa.Select[Commission]) -> int:
    """A partner's count by status, level or currency comes from the daily rollups (a partner can have
    hundreds of thousands of commissions); other filters count the rows."""
    unbounded = where.purchase_id is None and where.created_from is None and where.created_to is None
    if where.partner_id is not None and unbounded:
        return await rollups.commission_count(
            session, where.partner_id, status=where.status, level=where.level, currency=where.currency
        )
    return int(await session.scalar(sa.select(sa.func.count()).select_from(query.subquery())) or 0)


async def adjustments_for(session: AsyncSession, commission_id: int) -> list[CommissionAdjustment]:
    result = await session.scalars(
        sa.select(CommissionAdjustment)
        .where(CommissionAdjustment.commission_id == commission_id)
        .order_by(CommissionAdjustment.id)
    )
    return list(result)


# --- creation ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewCommission:
    partner_id: int
    referral_code: str
    level: int
    amount: int
    currency: str
    status: str


def _shares(amount: int, paid: list[Earner]) -> list[int]:
    try:
        return split_commissions(amount, [earner.rate_bps for earner in paid])
    except ValueError as error:
        raise Unprocessable(f"the chain's commission rates cannot be paid: {error}", field="amount") from error


class SaleNotPaid(Exception):
    """Sale `position` of a batch cannot be paid (`error`: its chain's rates); nothing of the batch is written."""

    def __init__(self, position: int, error: Unprocessable) -> None:
        super().__init__(position, error)
        self.position = position
        self.error = error


async def pay_commissions(session: AsyncSession, sales: Sequence[tuple[Sale, Chain]]) -> list[list[NewCommission]]:
    """The pending commissions of new sales and their ledger transactions (one each), for a batch of purchases
    (the purchase hot path): one INSERT for all the transactions, one for their entries, one for the
    commissions. Each chain is the one `earners.load_chains` read for its sale's partner, currency and time. The
    answer: each sale's commissions, in the order given; `SaleNotPaid` names a sale whose rates cannot be paid."""
    paid: list[list[tuple[Earner, int]]] = []
    for position, (sale, chain) in enumerate(sales):
        try:
            paid.append(await _paid_shares(session, sale, chain))
        except Unprocessable as error:
            raise SaleNotPaid(position, error) from None
    owed = [(sale, chain, shares) for (sale, chain), shares in zip(sales, paid, strict=True) if shares]
    # The ledger transactions first, so the commissions are inserted with their ids (no UPDATE after).
    transaction_ids = await ledger.post_each(
        session, [await _commission_transaction(session, sale, chain, shares) for sale, chain, shares in owed]
    )
    rows: list[dict[str, Any]] = []
    for (sale, _chain, shares), transaction_id in zip(owed, transaction_ids, strict=True):
        sale_rows = [_commission_row(sale, earner, share, transaction_id) for earner, share in shares]
        rollups.count_new_commissions(session.sync_session, rollups.utc_day(sale.occurred_at), sale_rows)
        rows += sale_rows
    if rows:
        insert = bulk.insert(dialect_name(session), _commissions, rows)
        await pipeline.run_later(session, insert.statement, insert.parameters)
    return [
        [
            NewCommission(earner.partner_id, _code(chain, earner), earner.level, share, sale.currency, "pending")
            for earner, share in shares
        ]
        for (sale, chain), shares in zip(sales, paid, strict=True)
    ]


async def _paid_shares(session: AsyncSession, sale: Sale, chain: Chain) -> list[tuple[Earner, int]]:
    """The chain members paid on the sale and their shares (> 0), level 1 first."""
    if not chain.members or not await still_pays(session, chain.members[0], sale):
        return []
    found = earners(chain, sale)
    return [(earner, share) for earner, share in zip(found, _shares(sale.amount, found), strict=True) if share > 0]


def _commission_row(sale: Sale, earner: Earner, share: int, transaction_id: int) -> dict[str, Any]:
    return {
        "purchase_id": sale.purchase_id,
        "partner_id": earner.partner_id,
        "level": earner.level,
        "currency": sale.currency,
        "base_amount": sale.amount,
        "rate_bps": earner.rate_bps,
        "amount": share,
        "reversed_amount": 0,
        "status": "pending",
        "status_reason": "",
        "payable_at": sale.recorded_at + timedelta(days=earner.hold_days),
        "ledger_transaction_id": transaction_id,
        "created_at": sale.recorded_at,
    }


def _code(chain: Chain, earner: Earner) -> str:
    return next(member.referral_code for member in chain.members if member.partner_id == earner.partner_id)


_commissions = cast(sa.Table, Commission.__table__)


async def create_commissions_for_purchase(
    session: AsyncSession, *, purchase: Purchase, customer: Customer, now: datetime
) -> list[Commission]:
    """`pay_commissions` for a purchase loaded with the ORM (flushed). Idempotent: a purchase that already has
    commissions gets them back."""
    existing = await commissions_for_purchase(session, purchase.id)
    if existing or customer.partner_id is None:
        return existing
    sale = Sale(
        purchase_id=purchase.id,
        external_id=purchase.external_id,
        customer_id=customer.id,
        partner_id=customer.partner_id,
        amount=purchase.amount,
        currency=purchase.currency,
        occurred_at=purchase.occurred_at,
        first_purchase_at=customer.first_purchase_at or purchase.occurred_at,
        recorded_at=now,
    )
    chain = await load_chain(session, customer.partner_id, currency=purchase.currency, at=purchase.occurred_at)
    try:
        await pay_commissions(session, [(sale, chain)])
    except SaleNotPaid as unpaid:
        raise unpaid.error from None
    return await commissions_for_purchase(session, purchase.id)


async def _commission_transaction(
    session: AsyncSession, sale: Sale, chain: Chain, shares: list[tuple[Earner, int]]
) -> NewTransaction:
    """The sale's ledger transaction: commission_expense pays each share into its partner's earnings_pending.
    The accounts come with the chain; the first sale in a currency (or a partner's first commission) opens them."""
    expense: LedgerAccount | AccountRef | None = chain.expense_account
    pending: dict[int, LedgerAccount | AccountRef] = {
        member.partner_id: member.pending_account for member in chain.members if member.pending_account is not None
    }
    partner_ids = [earner.partner_id for earner, _ in shares]
    if expense is None or any(partner not in pending for partner in partner_ids):
        expense, opened = await accounts.commission_accounts(session, partner_ids, sale.currency)
        pending.update(opened)
    postings = [Posting(expense, -sum(share for _, share in shares))]
    postings += [Posting(pending[earner.partner_id], share) for earner, share in shares]
    return NewTransaction(
        idempotency_key=f"purchase:{sale.purchase_id}:commissions",
        kind=COMMISSION_KIND,
        postings=postings,
        description=f"commissions on purchase {sale.external_id}",
        details={"purchase_id": sale.purchase_id},
    )


# --- money back to the platform ----------------------------------------------------------------------


async def _partner_account(session: AsyncSession, commission: Commission) -> LedgerAccount:
    """Where the commission's money sits now: pending before approval, available after."""
    if commission.status == "pending":
        return await accounts.earnings_pending_account(session, commission.partner_id, commission.currency)
    return await accounts.earnings_available_account(session, commission.partner_id, commission.currency)


async def _take_back(
    session: AsyncSession,
    commission: Commission,
    amount: int,
    *,
    idempotency_key: str,
    kind: str,
    reason: str,
) -> None:
    """Move `amount` of a commission from the partner back to commission_expense (a clawback if approved)."""
    source = await _partner_account(session, commission)
    expense = await accounts.commission_expense_account(session, commission.currency)
    await ledger.transfer(
        session,
        idempotency_key=idempotency_key,
        kind=kind,
        source=source,
        destination=expense,
        amount=amount,
        description=reason[:500],
        details={"commission_id": commission.id},
        allow_overdraft=commission.status != "pending",
    )


async def _already_posted(session: AsyncSession, idempotency_key: str) -> bool:
    found = await session.scalar(
        sa.select(LedgerTransaction.id).where(LedgerTransaction.idempotency_key == idempotency_key)
    )
    return found is not None


async def reverse_commissions_for_refund(
    session: AsyncSession,
    *,
    purchase: Purchase,
    previous_refunded: int,
    new_refunded: int,
    refund_key: str,
    reason: str,
    now: datetime,
) -> list[Commission]:
    """Reverse each commission of the purchase pro rata (DESIGN.md): this refund takes
    reversed(new_refunded) - reversed(previous_refunded). A chargeback is a refund of all that is left."""
    if not 0 <= previous_refunded <= new_refunded <= purchase.amount:
        raise Unprocessable("a refund takes the refunded total up, at most to the purchase amount", field="amount")
    changed: list[Commission] = []
    for commission in await commissions_for_purchase(session, purchase.id, for_update=True):
        if commission.status in ("reversed", "rejected"):
            continue
        delta = reversal_delta(commission.amount, purchase.amount, previous_refunded, new_refunded)
        delta = min(delta, commission.amount - commission.reversed_amount)
        key = f"{refund_key}:commission:{commission.id}"
        if delta <= 0 or await _already_posted(session, key):
            continue
        await _take_back(
            session,
            commission,
            delta,
            idempotency_key=key,
            kind="commission_reversal",
            reason=reason,
        )
        commission.reversed_amount += delta
        commission.status_reason = reason[:500]
        if commission.reversed_amount == commission.amount:
            commission.status = "reversed"
        changed.append(commission)
    await session.flush()
    return changed


# --- approval ------------------------------------------------------------------------------------------


async def _approve(session: AsyncSession, commission: Commission, now: datetime) -> None:
    remaining = commission.amount - commission.reversed_amount
    if remaining > 0:
        pending = await accounts.earnings_pending_account(session, commission.partner_id, commission.currency)
        available = await accounts.earnings_available_account(session, commission.partner_id, commission.currency)
        await ledger.transfer(
            session,
            idempotency_key=f"commission:{commission.id}:approve",
            kind="commission_approval",
            source=pending,
            destination=available,
            amount=remaining,
            details={"commission_id": commission.id},
        )
    commission.status = "approved"
    commission.approved_at = now


async def approve_due_commissions(session: AsyncSession, *, now: datetime) -> int:
    """Approve every pending commission whose hold has passed, unless its partner is suspended or banned.
    Returns how many were approved. Safe to run again: approved commissions are no longer pending."""
    result = await session.scalars(
        sa.select(Commission)
        .join(Partner, Partner.id == Commission.partner_id)
        .where(
            Commission.status == "pending",
            Commission.payable_at <= now,
            Partner.status.not_in(BLOCKED_PARTNER_STATUSES),
        )
        .order_by(Commission.id)
        .with_for_update(of=Commission)
        .execution_options(populate_existing=True)
    )
    approved = 0
    for commission in result.all():
        await _approve(session, commission, now)
        approved += 1
    await session.flush()
    return approved


# --- staff actions -------------------------------------------------------------------------------------


async def approve_now(session: AsyncSession, actor: Actor, commission_id: int, *, now: datetime) -> Commission:
    """Staff approves a pending commission before its hold ends."""
    commission = await get_commission(session, commission_id, for_update=True)
    if commission.status != "pending":
        raise Conflict(f"commission {commission_id} is {commission.status}, not pending", field="commission_id")
    partner = await affiliates.get_partner(session, commission.partner_id)
    if partner.status in BLOCKED_PARTNER_STATUSES:
        raise Conflict(f"the partner is {partner.status}", field="partner_id")
    await _approve(session, commission, now)
    await session.flush()
    await record(
        session,
        actor,
        "commission.approved",
        subject_type="commission",
        subject_id=commission.id,
        details={
            "amount": commission.amount - commission.reversed_amount,
            "payable_at": str(commission.payable_at),
        },
    )
    return commission


async def reject(session: AsyncSession, actor: Actor, commission_id: int, *, reason: str) -> Commission:
    """Staff rejects a commission: whatever of it is not reversed yet goes back to the platform."""
    if not reason.strip():
        raise Unprocessable("a reason is required", field="reason")
    commission = await get_commission(session, commission_id, for_update=True)
    if commission.status in ("reversed", "rejected"):
        raise Conflict(f"commission {commission_id} is already {commission.status}", field="commission_id")
    remaining = commission.amount - commission.reversed_amount
    if remaining > 0:
        await _take_back(
            session,
            commission,
            remaining,
            idempotency_key=f"commission:{commission.id}:reject",
            kind="commission_rejection",
            reason=reason,
        )
    previous_status = commission.status
    commission.reversed_amount = commission.amount
    commission.status = "rejected"
    commission.status_reason = reason.strip()[:500]
    await session.flush()
    await record(
        session,
        actor,
        "commission.rejected",
        subject_type="commission",
        subject_id=commission.id,
        details={
            "reason": commission.status_reason,
            "reversed": remaining,
            "previous_status": previous_status,
        },
    )
    return commission


async def adjust(
    session: AsyncSession,
    actor: Actor,
    commission_id: int,
    *,
    amount: int,
    reason: str,
    idempotency_key: str | None = None,
) -> CommissionAdjustment:
    """A signed correction: positive pays the partner more, negative takes back (may leave a negative
    balance). Posted at once to the partner's earnings_available account. A repeated `idempotency_key`
    returns the adjustment already made."""
    if amount == 0:
        raise Unprocessable("an adjustment is a non-zero amount", field="amount")
    if not reason.strip():
        raise Unprocessable("a reason is required", field="reason")
    commission = await get_commission(session, commission_id, for_update=True)
    key = f"commission:{commission.id}:adjustment:{idempotency_key or uuid.uuid4().hex}"
    expense = await accounts.commission_expense_account(session, commission.currency)
    available = await accounts.earnings_available_account(session, commission.partner_id, commission.currency)
    transaction = await ledger.post_transaction(
        session,
        idempotency_key=key,
        kind="commission_adjustment",
        postings=[Posting(expense, -amount), Posting(available, amount)],
        description=reason.strip()[:500],
        details={"commission_id": commission.id},
        allow_overdraft=True,
    )
    already = await session.scalar(
        sa.select(CommissionAdjustment).where(CommissionAdjustment.ledger_transaction_id == transaction.id)
    )
    if already is not None:
        return already
    adjustment = CommissionAdjustment(
        commission_id=commission.id,
        amount=amount,
        reason=reason.strip()[:500],
        staff_id=actor.id,
        ledger_transaction_id=transaction.id,
    )
    session.add(adjustment)
    await session.flush()
    await record(
        session,
        actor,
        "commission.adjusted",
        subject_type="commission",
        subject_id=commission.id,
        details={"amount": amount, "reason": adjustment.reason, "adjustment_id": adjustment.id},
    )
    return adjustment
