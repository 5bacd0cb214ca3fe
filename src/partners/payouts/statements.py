"""A payout's statement: what it pays (commissions, FIFO), the clawbacks it nets, the adjustments on those
commissions, and the partner's ledger activity since the previous payout — as data and as a PDF (fpdf2)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from fpdf import FPDF
from sqlalchemy.ext.asyncio import AsyncSession

from partners.affiliates.models import Partner
from partners.commissions import accounts
from partners.commissions.models import Commission, CommissionAdjustment
from partners.events.models import Purchase
from partners.ledger import service as ledger
from partners.ledger.models import LedgerEntry, LedgerTransaction
from partners.payouts import service
from partners.payouts.models import Payout
from partners.programs.models import Program

ACTIVITY_LABELS = {
    "commission_approval": "Commission approved",
    "commission_reversal": "Clawback (refund or chargeback)",
    "commission_rejection": "Commission rejected",
    "commission_adjustment": "Adjustment",
    "payout": "Payout",
    "payout_returned": "Payout returned",
}


@dataclass(frozen=True, slots=True)
class CommissionLine:
    commission_id: int
    purchase_reference: str
    approved_at: datetime | None
    level: int
    earned: int
    reversed: int
    adjusted: int
    paid_now: int


@dataclass(frozen=True, slots=True)
class ClawbackLine:
    commission_id: int
    purchase_reference: str
    reversed: int
    netted: int


@dataclass(frozen=True, slots=True)
class AdjustmentLine:
    created_at: datetime
    commission_id: int
    reason: str
    amount: int


@dataclass(frozen=True, slots=True)
class ActivityLine:
    created_at: datetime
    description: str
    amount: int


@dataclass(frozen=True, slots=True)
class Statement:
    payout: Payout
    partner_name: str
    partner_email: str
    program_name: str
    commissions: list[CommissionLine]
    clawbacks: list[ClawbackLine]
    adjustments: list[AdjustmentLine]
    activity: list[ActivityLine]
    period_start: datetime | None
    balance_after_activity: int

    @property
    def commissions_total(self) -> int:
        return sum(line.paid_now for line in self.commissions)

    @property
    def clawbacks_total(self) -> int:
        return sum(line.netted for line in self.clawbacks)

    @property
    def other_balance(self) -> int:
        """Money paid that no commission accounts for (e.g. a manual ledger correction)."""
        return self.payout.amount - self.commissions_total + self.clawbacks_total


async def _previous_payout_time(session: AsyncSession, payout: Payout) -> datetime | None:
    created: datetime | None = await session.scalar(
        sa.select(sa.func.max(Payout.created_at)).where(
            Payout.partner_id == payout.partner_id,
            Payout.currency == payout.currency,
            Payout.id < payout.id,
        )
    )
    return created


async def _activity(session: AsyncSession, payout: Payout, start: datetime | None) -> tuple[list[ActivityLine], int]:
    account = await ledger.find_account(
        session,
        owner=accounts.partner_owner(payout.partner_id),
        kind=accounts.EARNINGS_AVAILABLE,
        currency=payout.currency,
    )
    if account is None:  # never happens for a payout (its hold was reserved there); reads open nothing
        return [], 0
    query = (
        sa.select(
            LedgerTransaction.created_at,
            LedgerTransaction.kind,
            LedgerTransaction.details,
            LedgerEntry.amount,
        )
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerEntry.account_id == account.id, LedgerTransaction.created_at <= payout.created_at)
        .order_by(LedgerTransaction.created_at, LedgerTransaction.id)
    )
    if start is not None:
        query = query.where(LedgerTransaction.created_at > start)
    lines = []
    for created_at, kind, details, amount in (await session.execute(query)).all():
        label = ACTIVITY_LABELS.get(kind, kind)
        if kind == "payout" and isinstance(details, dict) and "payout_id" in details:
            label = f"Payout #{details['payout_id']}"
        elif isinstance(details, dict) and "commission_id" in details:
            label = f"{label} (commission #{details['commission_id']})"
        lines.append(ActivityLine(created_at, label, int(amount)))
    balance = await session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(LedgerEntry.amount), 0))
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerEntry.account_id == account.id, LedgerTransaction.created_at <= payout.created_at)
    )
    return lines, int(balance or 0)


async def build_statement(session: AsyncSession, payout: Payout) -> Statement:
    partner = await session.get(Partner, payout.partner_id)
    program = await session.get(Program, payout.program_id)
    allocations = await service.allocations_of(session, payout.id)
    ids = [allocation.commission_id for allocation in allocations]
    rows = await session.execute(
        sa.select(Commission, Purchase.external_id)
        .join(Purchase, Purchase.id == Commission.purchase_id)
        .where(Commission.id.in_(ids))
    )
    found = {commission.id: (commission, reference) for commission, reference in rows.all()}
    adjustments = list(
        await session.scalars(
            sa.select(CommissionAdjustment)
            .where(CommissionAdjustment.commission_id.in_(ids))
            .order_by(CommissionAdjustment.id)
        )
    )
    adjusted: dict[int, int] = {}
    for adjustment in adjustments:
        adjusted[adjustment.commission_id] = adjusted.get(adjustment.commission_id, 0) + adjustment.amount
    commissions, clawbacks = [], []
    for allocation in allocations:
        commission, reference = found[allocation.commission_id]
        if allocation.amount > 0:
            commissions.append(
                CommissionLine(
                    commission.id,
                    reference,
                    commission.approved_at,
                    commission.level,
                    commission.amount,
                    commission.reversed_amount,
                    adjusted.get(commission.id, 0),
                    allocation.amount,
                )
            )
        else:
            clawbacks.append(ClawbackLine(commission.id, reference, commission.reversed_amount, -allocation.amount))
    start = await _previous_payout_time(session, payout)
    activity, balance = await _activity(session, payout, start)
    return Statement(
        payout=payout,
        partner_name=partner.name if partner else "",
        partner_email=partner.email if partner else "",
        program_name=program.name if program else "",
        commissions=commissions,
        clawbacks=clawbacks,
        adjustments=[
            AdjustmentLine(adjustment.created_at, adjustment.commission_id, adjustment.reason, adjustment.amount)
            for adjustment in adjustments
        ],
        activity=activity,
        period_start=start,
        balance_after_activity=balance,
    )


# --- PDF -------------------------------------------------------------------------------------------------


def _latin1(text: str) -> str:
    """The PDF core fonts speak Latin-1; anything else is shown as '?'."""
    return text.encode("latin-1", "replace").decode("latin-1")


def _date(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d") if value else "-"


class _Document(FPDF):
    def __init__(self, currency: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.currency = currency
        self.set_auto_page_break(auto=True, margin=15)
        self.add_page()

    def money(self, amount: int) -> str:
        return service.format_amount(amount, self.currency)

    def heading(self, text: str) -> None:
        self.ln(4)
        self.set_font("Helvetica", "B", 12)
        self.cell(0, 8, _latin1(text), new_x="LMARGIN", new_y="NEXT")

    def line_of(self, text: str, *, bold: bool = False) -> None:
        self.set_font("Helvetica", "B" if bold else "", 10)
        self.cell(0, 6, _latin1(text), new_x="LMARGIN", new_y="NEXT")

    def rows(self, header: tuple[str, ...], widths: tuple[int, ...], rows: list[tuple[str, ...]]) -> None:
        self.set_font("Helvetica", "B", 9)
        for title, width in zip(header, widths, strict=True):
            self.cell(width, 6, _latin1(title), border="B")
        self.ln()
        self.set_font("Helvetica", "", 9)
        for row in rows:
            for value, width in zip(row, widths, strict=True):
                self.cell(width, 6, _latin1(value)[: max(4, width // 2 + 8)])
            self.ln()


def render_pdf(statement: Statement) -> bytes:
    payout = statement.payout
    pdf = _Document(payout.currency)
    pdf.set_title(f"Payout statement #{payout.id}")
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, _latin1(f"Payout statement #{payout.id}"), new_x="LMARGIN", new_y="NEXT")
    pdf.line_of(f"{statement.program_name} - {statement.partner_name} <{statement.partner_email}>")
    pdf.line_of(f"Requested {_date(payout.created_at)} - status {payout.status}")
    shown = ", ".join(f"{key} {value}" for key, value in payout.details_masked.items() if value)
    pdf.line_of(f"Method: {payout.method} {shown}".strip())
    if payout.failure_reason:
        pdf.line_of(f"Reason: {payout.failure_reason}")
    pdf.line_of(f"Amount: {pdf.money(payout.amount)}", bold=True)

    pdf.heading("Commissions paid by this payout")
    pdf.rows(
        ("Commission", "Purchase", "Approved", "Level", "Earned", "Reversed", "Adjusted", "Paid now"),
        (22, 34, 22, 12, 25, 25, 25, 25),
        [
            (
                f"#{line.commission_id}",
                line.purchase_reference,
                _date(line.approved_at),
                str(line.level),
                pdf.money(line.earned),
                pdf.money(line.reversed),
                pdf.money(line.adjusted),
                pdf.money(line.paid_now),
            )
            for line in statement.commissions
        ],
    )
    pdf.line_of(f"Commissions total: {pdf.money(statement.commissions_total)}", bold=True)

    pdf.heading("Clawbacks netted")
    if statement.clawbacks:
        pdf.rows(
            ("Commission", "Purchase", "Reversed", "Netted"),
            (30, 60, 45, 45),
            [
                (
                    f"#{line.commission_id}",
                    line.purchase_reference,
                    pdf.money(line.reversed),
                    pdf.money(-line.netted),
                )
                for line in statement.clawbacks
            ],
        )
    pdf.line_of(f"Clawbacks total: {pdf.money(-statement.clawbacks_total)}", bold=True)

    pdf.heading("Adjustments")
    if statement.adjustments:
        pdf.rows(
            ("Date", "Commission", "Reason", "Amount"),
            (25, 25, 100, 30),
            [
                (_date(line.created_at), f"#{line.commission_id}", line.reason, pdf.money(line.amount))
                for line in statement.adjustments
            ],
        )
    else:
        pdf.line_of("None")
    if statement.other_balance:
        pdf.line_of(f"Other balance paid: {pdf.money(statement.other_balance)}")

    since = _date(statement.period_start) if statement.period_start else "the start"
    pdf.heading(f"Account activity since {since}")
    pdf.rows(
        ("Date", "Description", "Amount"),
        (25, 120, 35),
        [(_date(line.created_at), line.description, pdf.money(line.amount)) for line in statement.activity],
    )
    pdf.line_of(f"Balance after this activity: {pdf.money(statement.balance_after_activity)}", bold=True)
    if statement.balance_after_activity < 0:
        pdf.line_of("A negative balance comes from clawbacks; it is netted from your next payouts.")
    pdf.ln(4)
    pdf.line_of(f"Total of this payout: {pdf.money(payout.amount)}", bold=True)
    return bytes(pdf.output())
