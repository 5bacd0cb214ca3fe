"""Disputes: opened by a partner, answered in a thread, decided by staff.

- Statuses: `open` (nobody answered yet) -> `awaiting_partner` / `awaiting_staff` (by who wrote last: a staff
  reply waits on the partner; a partner message or evidence upload waits on staff) -> `accepted` | `rejected`.
  A decided dispute is closed: no more messages or evidence, and a second decision is a 409.
- SLA: `awaiting_staff_since` is set when the dispute starts waiting on staff (opened, or the partner writes
  after a staff reply) and cleared by a staff reply or the decision. Past `dispute_sla_hours` it is breached.
- Accepting pays through the ledger only: a commission dispute by `commissions.service.adjust` (the commission
  adjustment and its ledger transaction are linked); a missing conversion either by a transfer from the
  platform's commission_expense to the partner's earnings_available (key `dispute:{id}:adjustment`), or by a
  manually attributed purchase (its external id is the claimed order reference, so the host cannot later
  report the same order again and pay it twice) and its commissions.
- Emails go through the outbox: staff (the disputes inbox) hear of new disputes and partner replies; the
  partner hears of staff replies and the decision. Every decision is audited.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from partners.affiliates import service as affiliates
from partners.affiliates.models import Partner
from partners.audit.service import Actor, record
from partners.commissions import accounts
from partners.commissions import service as commissions
from partners.commissions.models import Commission
from partners.disputes.files import EvidenceRefused, EvidenceTooLarge, check_file
from partners.disputes.models import (
    CLOSED_STATUSES,
    COMMISSION_KINDS,
    MISSING_CONVERSION,
    WAITING_ON_STAFF,
    Dispute,
    DisputeEvidence,
    DisputeMessage,
)
from partners.disputes.schemas import DisputeIn, ResolveIn
from partners.events.models import Purchase
from partners.kit.errors import AppError, Conflict, NotFound, Unprocessable
from partners.ledger import service as ledger
from partners.mail.service import queue_email
from partners.programs.models import Program
from partners.settings import Settings
from partners.tracking import service as tracking
from partners.tracking.models import Customer

ADJUSTMENT_KIND = "dispute_adjustment"


class PayloadTooLarge(AppError):
    status = 413
    title = "Content too large"
    type_slug = "content-too-large"


@dataclass(frozen=True, slots=True)
class EvidenceUpload:
    """A file as received; `content` may be cut at max_bytes + 1 by the reader (that is enough to refuse)."""

    filename: str
    content: bytes


@dataclass(frozen=True, slots=True)
class Sla:
    target_hours: int
    age_seconds: int
    waiting_on_staff_seconds: int | None
    since_last_staff_reply_seconds: int | None
    due_at: datetime | None
    breached: bool


@dataclass(frozen=True, slots=True)
class QueueFilter:
    status: str | None = None
    closed: bool | None = None
    kind: str | None = None
    partner_id: int | None = None
    breached: bool | None = None
    min_age_hours: int | None = None
    max_age_hours: int | None = None
    sort: Literal["newest", "oldest", "waiting"] = "waiting"


# --- SLA -----------------------------------------------------------------------------------------------


def _seconds(delta: timedelta) -> int:
    return max(0, int(delta.total_seconds()))


def sla_of(dispute: Dispute, *, target_hours: int, now: datetime) -> Sla:
    end = dispute.resolved_at or now
    waiting_since = dispute.awaiting_staff_since if dispute.status in WAITING_ON_STAFF else None
    due_at = waiting_since + timedelta(hours=target_hours) if waiting_since else None
    last_reply = dispute.last_staff_reply_at
    return Sla(
        target_hours=target_hours,
        age_seconds=_seconds(end - dispute.created_at),
        waiting_on_staff_seconds=_seconds(now - waiting_since) if waiting_since else None,
        since_last_staff_reply_seconds=_seconds(now - last_reply) if last_reply else None,
        due_at=due_at,
        breached=due_at is not None and now >= due_at,
    )


def _breached(settings: Settings, now: datetime) -> sa.ColumnElement[bool]:
    cutoff = now - timedelta(hours=settings.dispute_sla_hours)
    return sa.and_(Dispute.status.in_(WAITING_ON_STAFF), Dispute.awaiting_staff_since <= cutoff)


# --- reading -------------------------------------------------------------------------------------------


async def get_dispute(session: AsyncSession, dispute_id: int, *, for_update: bool = False) -> Dispute:
    query = sa.select(Dispute).where(Dispute.id == dispute_id)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    dispute = await session.scalar(query)
    if dispute is None:
        raise NotFound(f"dispute {dispute_id} not found", field="dispute_id")
    return dispute


async def get_partner_dispute(
    session: AsyncSession, partner_id: int, dispute_id: int, *, for_update: bool = False
) -> Dispute:
    """The partner's own dispute; another partner's is as not found as a missing one."""
    dispute = await get_dispute(session, dispute_id, for_update=for_update)
    if dispute.partner_id != partner_id:
        raise NotFound(f"dispute {dispute_id} not found", field="dispute_id")
    return dispute


async def messages_of(session: AsyncSession, dispute_id: int) -> list[DisputeMessage]:
    result = await session.scalars(
        sa.select(DisputeMessage).where(DisputeMessage.dispute_id == dispute_id).order_by(DisputeMessage.id)
    )
    return list(result)


async def evidence_of(session: AsyncSession, dispute_id: int) -> list[DisputeEvidence]:
    result = await session.scalars(
        sa.select(DisputeEvidence).where(DisputeEvidence.dispute_id == dispute_id).order_by(DisputeEvidence.id)
    )
    return list(result)


async def evidence_file(session: AsyncSession, dispute_id: int, evidence_id: int) -> DisputeEvidence:
    """One evidence file of the dispute, bytes included."""
    evidence = await session.scalar(
        sa.select(DisputeEvidence)
        .where(DisputeEvidence.id == evidence_id, DisputeEvidence.dispute_id == dispute_id)
        .options(undefer(DisputeEvidence.content))
    )
    if evidence is None:
        raise NotFound(f"evidence {evidence_id} not found", field="evidence_id")
    return evidence


async def commission_ids_of(session: AsyncSession, dispute: Dispute) -> list[int]:
    """The commissions of a manual conversion's purchase."""
    if dispute.purchase_id is None:
        return []
    return [commission.id for commission in await commissions.commissions_for_purchase(session, dispute.purchase_id)]


async def _page(
    session: AsyncSession,
    query: sa.Select[Dispute],
    order: Sequence[sa.ColumnElement[Any]],
    *,
    limit: int,
    offset: int,
) -> tuple[list[Dispute], int]:
    total = await session.scalar(sa.select(sa.func.count()).select_from(query.subquery()))
    rows = await session.scalars(query.order_by(*order).limit(limit).offset(offset))
    return list(rows), int(total or 0)


async def list_partner_disputes(
    session: AsyncSession, partner_id: int, *, status: str | None, limit: int, offset: int
) -> tuple[list[Dispute], int]:
    query = sa.select(Dispute).where(Dispute.partner_id == partner_id)
    if status is not None:
        query = query.where(Dispute.status == status)
    return await _page(session, query, [Dispute.created_at.desc(), Dispute.id.desc()], limit=limit, offset=offset)


def _queue_query(where: QueueFilter, settings: Settings, now: datetime) -> sa.Select[Dispute]:
    query = sa.select(Dispute)
    if where.status is not None:
        query = query.where(Dispute.status == where.status)
    if where.closed is not None:
        closed = Dispute.status.in_(CLOSED_STATUSES)
        query = query.where(closed if where.closed else sa.not_(closed))
    if where.kind is not None:
        query = query.where(Dispute.kind == where.kind)
    if where.partner_id is not None:
        query = query.where(Dispute.partner_id == where.partner_id)
    if where.breached is not None:
        breached = _breached(settings, now)
        query = query.where(breached if where.breached else sa.not_(breached))
    if where.min_age_hours is not None:
        query = query.where(Dispute.created_at <= now - timedelta(hours=where.min_age_hours))
    if where.max_age_hours is not None:
        query = query.where(Dispute.created_at >= now - timedelta(hours=where.max_age_hours))
    return query


def _queue_order(sort: str) -> list[sa.ColumnElement[Any]]:
    if sort == "newest":
        return [Dispute.created_at.desc(), Dispute.id.desc()]
    if sort == "oldest":
        return [Dispute.created_at.asc(), Dispute.id.asc()]
    # waiting: those waiting on staff first, the longest waiting first (breaches lead), then the rest by age.
    waiting = sa.case((Dispute.status.in_(WAITING_ON_STAFF), 0), else_=1)
    return [waiting.asc(), Dispute.awaiting_staff_since.asc(), Dispute.created_at.asc(), Dispute.id.asc()]


async def list_queue(
    session: AsyncSession, settings: Settings, where: QueueFilter, *, now: datetime, limit: int, offset: int
) -> tuple[list[Dispute], int]:
    """The staff queue: filtered by status, kind, partner, age and SLA breach; sorted by `where.sort`."""
    return await _page(
        session, _queue_query(where, settings, now), _queue_order(where.sort), limit=limit, offset=offset
    )


# --- opening -------------------------------------------------------------------------------------------


async def _own_commission(session: AsyncSession, partner_id: int, commission_id: int | None) -> Commission:
    if commission_id is None:
        raise Unprocessable("a dispute of this kind names the commission", field="commission_id")
    commission = await session.get(Commission, commission_id)
    if commission is None or commission.partner_id != partner_id:
        raise NotFound(f"commission {commission_id} not found", field="commission_id")
    return commission


async def _check_no_open_dispute_on(session: AsyncSession, commission_id: int) -> None:
    found = await session.scalar(
        sa.select(Dispute.id).where(Dispute.commission_id == commission_id, Dispute.status.not_in(CLOSED_STATUSES))
    )
    if found is not None:
        raise Conflict(f"dispute {found} on this commission is still open", field="commission_id")


def _check_missing_conversion_fields(data: DisputeIn, today: date) -> tuple[str, date]:
    if data.commission_id is not None:
        raise Unprocessable("a missing conversion names no commission", field="commission_id")
    if data.order_reference is None:
        raise Unprocessable("a missing conversion needs the order reference", field="order_reference")
    if data.order_date is None:
        raise Unprocessable("a missing conversion needs the order date", field="order_date")
    if data.order_date > today:
        raise Unprocessable("the order date is in the future", field="order_date")
    return data.order_reference, data.order_date


async def _check_not_claimed_already(session: AsyncSession, partner_id: int, reference: str) -> None:
    found = await session.scalar(
        sa.select(Dispute.id).where(
            Dispute.partner_id == partner_id,
            Dispute.order_reference == reference,
            Dispute.status != "rejected",
        )
    )
    if found is not None:
        raise Conflict(f"order {reference!r} is already claimed by dispute {found}", field="order_reference")


async def _program_currency(session: AsyncSession, partner: Partner) -> str:
    program = await session.get(Program, partner.program_id)
    assert program is not None
    return program.currency


async def open_dispute(
    session: AsyncSession, settings: Settings, *, partner_id: int, data: DisputeIn, now: datetime
) -> Dispute:
    """A partner opens a dispute; the opening text is the thread's first message; staff are emailed."""
    partner = await affiliates.get_partner(session, partner_id)
    dispute = Dispute(partner_id=partner.id, kind=data.kind, status="open", claimed_amount=data.claimed_amount)
    if data.kind in COMMISSION_KINDS:
        commission = await _own_commission(session, partner.id, data.commission_id)
        await _check_no_open_dispute_on(session, commission.id)
        if data.currency is not None and data.currency != commission.currency:
            raise Unprocessable(f"the commission is in {commission.currency}", field="currency")
        dispute.commission_id = commission.id
        dispute.currency = commission.currency
    else:
        reference, order_date = _check_missing_conversion_fields(data, now.astimezone(UTC).date())
        await _check_not_claimed_already(session, partner.id, reference)
        dispute.order_reference = reference
        dispute.order_date = order_date
        dispute.customer_external_id = data.customer_external_id
        dispute.currency = data.currency or await _program_currency(session, partner)
    dispute.created_at = now
    dispute.awaiting_staff_since = now
    dispute.last_partner_message_at = now
    session.add(dispute)
    await session.flush()
    await _add_message(session, dispute, Actor("partner", str(partner.id)), data.message, now)
    await record(
        session,
        Actor("partner", str(partner.id)),
        "dispute.opened",
        subject_type="dispute",
        subject_id=dispute.id,
        details={
            "kind": dispute.kind,
            "commission_id": dispute.commission_id,
            "order": dispute.order_reference,
        },
    )
    await _email_staff(
        session,
        settings,
        dispute,
        subject=f"new {dispute.kind.replace('_', ' ')} dispute from {partner.name}",
        text=f"{partner.name} <{partner.email}> opened a dispute.\n\n{_summary(dispute)}\n\n{data.message}",
    )
    return dispute


# --- the thread ----------------------------------------------------------------------------------------


def _ensure_open(dispute: Dispute) -> None:
    if dispute.status in CLOSED_STATUSES:
        raise Conflict(f"dispute {dispute.id} is closed ({dispute.status})", field="dispute_id")


async def _add_message(
    session: AsyncSession, dispute: Dispute, author: Actor, body: str, now: datetime
) -> DisputeMessage:
    message = DisputeMessage(
        dispute_id=dispute.id, author_kind=author.kind, author_id=author.id, body=body, created_at=now
    )
    session.add(message)
    await session.flush()
    return message


def _partner_spoke(dispute: Dispute, now: datetime) -> None:
    """The partner wrote: the dispute waits on staff; the SLA clock runs from the first unanswered word."""
    if dispute.status == "awaiting_partner":
        dispute.status = "awaiting_staff"
    if dispute.awaiting_staff_since is None:
        dispute.awaiting_staff_since = now
        dispute.sla_alert_sent_at = None
    dispute.last_partner_message_at = now


async def partner_reply(
    session: AsyncSession, settings: Settings, *, partner_id: int, dispute_id: int, body: str, now: datetime
) -> DisputeMessage:
    dispute = await get_partner_dispute(session, partner_id, dispute_id, for_update=True)
    _ensure_open(dispute)
    message = await _add_message(session, dispute, Actor("partner", str(partner_id)), body, now)
    _partner_spoke(dispute, now)
    await session.flush()
    partner = await affiliates.get_partner(session, partner_id)
    await _email_staff(
        session,
        settings,
        dispute,
        subject=f"{partner.name} replied",
        text=f"{partner.name} <{partner.email}> wrote:\n\n{body}",
    )
    return message


async def staff_reply(
    session: AsyncSession, settings: Settings, actor: Actor, *, dispute_id: int, body: str, now: datetime
) -> DisputeMessage:
    dispute = await get_dispute(session, dispute_id, for_update=True)
    _ensure_open(dispute)
    message = await _add_message(session, dispute, actor, body, now)
    dispute.status = "awaiting_partner"
    dispute.awaiting_staff_since = None
    dispute.sla_alert_sent_at = None
    dispute.last_staff_reply_at = now
    await session.flush()
    await _email_partner(
        session,
        settings,
        dispute,
        subject="a reply to your dispute",
        text=f"Our team replied:\n\n{body}\n\nAnswer it at {_partner_link(settings, dispute)}",
    )
    return message


# --- evidence ------------------------------------------------------------------------------------------


def _checked(upload: EvidenceUpload, max_bytes: int) -> tuple[str, str]:
    try:
        checked = check_file(upload.filename, upload.content, max_bytes=max_bytes)
    except EvidenceTooLarge as error:
        raise PayloadTooLarge(str(error), field="files", extra={"filename": upload.filename}) from error
    except EvidenceRefused as error:
        raise Unprocessable(str(error), field="files", extra={"filename": upload.filename}) from error
    return checked.filename, checked.content_type


async def add_evidence(
    session: AsyncSession,
    settings: Settings,
    *,
    partner_id: int,
    dispute_id: int,
    uploads: Sequence[EvidenceUpload],
    now: datetime,
) -> list[DisputeEvidence]:
    """Store the partner's files, all or none: each is checked by content and size, and the dispute holds at
    most `dispute_evidence_max_files`."""
    dispute = await get_partner_dispute(session, partner_id, dispute_id, for_update=True)
    _ensure_open(dispute)
    if not uploads:
        raise Unprocessable("send at least one file", field="files")
    already = len(await evidence_of(session, dispute.id))
    limit = settings.dispute_evidence_max_files
    if already + len(uploads) > limit:
        raise Unprocessable(f"a dispute holds at most {limit} files ({already} already)", field="files")
    stored = []
    for upload in uploads:
        filename, content_type = _checked(upload, settings.dispute_evidence_max_bytes)
        stored.append(
            DisputeEvidence(
                dispute_id=dispute.id,
                filename=filename,
                content_type=content_type,
                size_bytes=len(upload.content),
                sha256=hashlib.sha256(upload.content).hexdigest(),
                uploaded_by_kind="partner",
                uploaded_by_id=str(partner_id),
                content=upload.content,
                created_at=now,
            )
        )
    session.add_all(stored)
    _partner_spoke(dispute, now)
    await session.flush()
    names = ", ".join(evidence.filename for evidence in stored)
    await _email_staff(session, settings, dispute, subject="new evidence", text=f"The partner added evidence: {names}")
    return stored


# --- decisions -----------------------------------------------------------------------------------------


async def resolve(
    session: AsyncSession,
    settings: Settings,
    actor: Actor,
    dispute_id: int,
    decision: ResolveIn,
    *,
    now: datetime,
) -> Dispute:
    """Accept (with a remedy) or reject the dispute, once; audited, and the partner is emailed."""
    dispute = await get_dispute(session, dispute_id, for_update=True)
    if dispute.status in CLOSED_STATUSES:
        raise Conflict(f"dispute {dispute.id} is already {dispute.status}", field="dispute_id")
    note = decision.reason.strip()
    if decision.decision == "reject":
        _reject(dispute, decision, note)
    elif decision.remedy == "adjustment":
        await _accept_with_adjustment(session, actor, dispute, decision, note)
    elif decision.remedy == "conversion":
        await _accept_with_conversion(session, actor, dispute, decision, now)
    else:
        raise Unprocessable("an acceptance names its remedy: adjustment or conversion", field="remedy")
    dispute.resolution_reason = note
    dispute.resolved_at = now
    dispute.resolved_by = actor.id
    dispute.awaiting_staff_since = None
    await session.flush()
    await _audit_decision(session, actor, dispute)
    await _email_partner(
        session,
        settings,
        dispute,
        subject=f"your dispute was {dispute.status}",
        text=_decision_text(settings, dispute),
    )
    return dispute


def _reject(dispute: Dispute, decision: ResolveIn, note: str) -> None:
    if decision.remedy is not None:
        raise Unprocessable("a rejection has no remedy", field="remedy")
    if not note:
        raise Unprocessable("a rejection needs a reason", field="reason")
    dispute.status = "rejected"


async def _accept_with_adjustment(
    session: AsyncSession, actor: Actor, dispute: Dispute, decision: ResolveIn, note: str
) -> None:
    amount = decision.amount if decision.amount is not None else dispute.claimed_amount
    if amount is None:
        raise Unprocessable("the dispute claims no amount: give the adjustment's amount", field="amount")
    currency = decision.currency or dispute.currency
    reason = note or f"dispute {dispute.id} accepted"
    if dispute.commission_id is not None:
        if currency != dispute.currency:
            raise Unprocessable(f"the commission is in {dispute.currency}", field="currency")
        adjustment = await commissions.adjust(
            session,
            actor,
            dispute.commission_id,
            amount=amount,
            reason=reason,
            idempotency_key=f"dispute:{dispute.id}",
        )
        dispute.commission_adjustment_id = adjustment.id
        dispute.ledger_transaction_id = adjustment.ledger_transaction_id
    else:
        assert currency is not None
        dispute.ledger_transaction_id = await _pay_from_platform(session, dispute, amount, currency, reason)
        dispute.currency = currency
    dispute.adjustment_amount = amount
    dispute.resolution = "adjustment"
    dispute.status = "accepted"


async def _pay_from_platform(session: AsyncSession, dispute: Dispute, amount: int, currency: str, reason: str) -> int:
    expense = await accounts.commission_expense_account(session, currency)
    available = await accounts.earnings_available_account(session, dispute.partner_id, currency)
    transaction = await ledger.transfer(
        session,
        idempotency_key=f"dispute:{dispute.id}:adjustment",
        kind=ADJUSTMENT_KIND,
        source=expense,
        destination=available,
        amount=amount,
        description=reason[:500],
        details={"dispute_id": dispute.id},
    )
    return transaction.id


async def _accept_with_conversion(
    session: AsyncSession, actor: Actor, dispute: Dispute, decision: ResolveIn, now: datetime
) -> None:
    if dispute.kind != MISSING_CONVERSION or dispute.order_reference is None:
        raise Unprocessable("a manual conversion answers a missing-conversion claim only", field="remedy")
    if decision.purchase_amount is None:
        raise Unprocessable("a manual conversion needs the purchase amount", field="purchase_amount")
    customer = await _customer_for(session, actor, dispute, decision.customer_external_id, now)
    if await session.scalar(sa.select(Purchase.id).where(Purchase.external_id == dispute.order_reference)):
        raise Conflict(
            f"a purchase {dispute.order_reference!r} is already recorded: accept with an adjustment instead",
            field="order_reference",
        )
    occurred_at = decision.occurred_at or _noon(dispute.order_date or now.date())
    if occurred_at > now:
        raise Unprocessable("the purchase cannot be in the future", field="occurred_at")
    purchase = await _record_purchase(
        session,
        customer,
        dispute.order_reference,
        decision,
        decision.currency or dispute.currency,
        occurred_at,
    )
    created = await commissions.create_commissions_for_purchase(session, purchase=purchase, customer=customer, now=now)
    if not any(commission.partner_id == dispute.partner_id for commission in created):
        raise Unprocessable(
            "this purchase earns the partner no commission under its terms: accept with an adjustment",
            field="remedy",
        )
    dispute.purchase_id = purchase.id
    dispute.resolution = "conversion"
    dispute.status = "accepted"


def _noon(day: date) -> datetime:
    return datetime.combine(day, time(12), tzinfo=UTC)


async def _customer_for(
    session: AsyncSession, actor: Actor, dispute: Dispute, external_id: str | None, now: datetime
) -> Customer:
    """The customer, locked and bound to the disputing partner (an unattributed one is bound now)."""
    external_id = external_id or dispute.customer_external_id
    if external_id is None:
        raise Unprocessable("name the customer of the conversion", field="customer_external_id")
    customer = await tracking.find_customer(session, external_id)
    if customer is None:
        raise NotFound(f"customer {external_id!r} not found", field="customer_external_id")
    await session.refresh(customer, with_for_update=True)
    if customer.partner_id is None:
        await tracking.reassign_customer(
            session,
            actor,
            external_id=external_id,
            partner_id=dispute.partner_id,
            reason=f"dispute {dispute.id}: missing conversion accepted",
            now=now,
        )
    elif customer.partner_id != dispute.partner_id:
        raise Conflict(
            f"customer {external_id!r} is bound to another partner; reassign it first if that is wrong",
            field="customer_external_id",
        )
    return customer


async def _record_purchase(
    session: AsyncSession,
    customer: Customer,
    external_id: str,
    decision: ResolveIn,
    currency: str | None,
    occurred_at: datetime,
) -> Purchase:
    assert decision.purchase_amount is not None and currency is not None
    if customer.first_purchase_at is None or occurred_at < customer.first_purchase_at:
        customer.first_purchase_at = occurred_at
    purchase = Purchase(
        external_id=external_id,
        customer_id=customer.id,
        partner_id=customer.partner_id,
        amount=decision.purchase_amount,
        currency=currency,
        product=decision.product,
        occurred_at=occurred_at,
        refunded_amount=0,
        status="completed",
    )
    session.add(purchase)
    await session.flush()
    return purchase


async def _audit_decision(session: AsyncSession, actor: Actor, dispute: Dispute) -> None:
    await record(
        session,
        actor,
        f"dispute.{dispute.status}",
        subject_type="dispute",
        subject_id=dispute.id,
        details={
            "partner_id": dispute.partner_id,
            "kind": dispute.kind,
            "remedy": dispute.resolution,
            "reason": dispute.resolution_reason,
            "amount": dispute.adjustment_amount,
            "currency": dispute.currency,
            "ledger_transaction_id": dispute.ledger_transaction_id,
            "commission_adjustment_id": dispute.commission_adjustment_id,
            "purchase_id": dispute.purchase_id,
        },
    )


# --- SLA alerts ----------------------------------------------------------------------------------------


async def alert_breaches(session: AsyncSession, settings: Settings, *, now: datetime) -> int:
    """Email the disputes inbox one list of the disputes that breached their SLA since the last alert; each
    breach is announced once (until staff answer and the partner writes again). Returns how many."""
    result = await session.scalars(
        sa.select(Dispute)
        .where(_breached(settings, now), Dispute.sla_alert_sent_at.is_(None))
        .order_by(Dispute.awaiting_staff_since, Dispute.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    breached = list(result)
    if not breached:
        return 0
    lines = [
        f"- dispute #{d.id} ({d.kind}), waiting since {d.awaiting_staff_since:%Y-%m-%d %H:%M} UTC: "
        f"{settings.base_url}/admin/disputes/{d.id}"
        for d in breached
    ]
    for dispute in breached:
        dispute.sla_alert_sent_at = now
    await session.flush()
    await queue_email(
        session,
        to=settings.disputes_inbox,
        subject=f"{len(breached)} dispute(s) past the {settings.dispute_sla_hours} h answer target",
        text="These disputes wait on staff longer than the SLA:\n\n" + "\n".join(lines),
    )
    return len(breached)


# --- email ---------------------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _summary(dispute: Dispute) -> str:
    if dispute.commission_id is not None:
        what = f"Commission {dispute.commission_id}"
    else:
        what = f"Order {dispute.order_reference} of {dispute.order_date}"
        if dispute.customer_external_id:
            what += f", customer {dispute.customer_external_id}"
    if dispute.claimed_amount is not None:
        what += f"; claimed {dispute.claimed_amount} (minor units of {dispute.currency})"
    return what


def _partner_link(settings: Settings, dispute: Dispute) -> str:
    return f"{settings.base_url}/portal/disputes/{dispute.id}"


def _decision_text(settings: Settings, dispute: Dispute) -> str:
    if dispute.status == "rejected":
        outcome = f"Your dispute was rejected.\n\nReason: {dispute.resolution_reason}"
    elif dispute.resolution == "adjustment":
        outcome = (
            f"Your dispute was accepted: {dispute.adjustment_amount} (minor units of {dispute.currency}) "
            "was added to your available balance."
        )
    else:
        outcome = "Your dispute was accepted: the conversion is now attributed to you and earns its commissions."
    if dispute.status == "accepted" and dispute.resolution_reason:
        outcome += f"\n\nNote: {dispute.resolution_reason}"
    return f"{outcome}\n\n{_summary(dispute)}\n{_partner_link(settings, dispute)}"


async def _email_staff(session: AsyncSession, settings: Settings, dispute: Dispute, *, subject: str, text: str) -> None:
    await queue_email(
        session,
        to=settings.disputes_inbox,
        subject=_one_line(f"[dispute #{dispute.id}] {subject}"),
        text=f"{text}\n\n{settings.base_url}/admin/disputes/{dispute.id}",
    )


async def _email_partner(
    session: AsyncSession, settings: Settings, dispute: Dispute, *, subject: str, text: str
) -> None:
    partner = await affiliates.get_partner(session, dispute.partner_id)
    await queue_email(session, to=partner.email, subject=_one_line(f"[dispute #{dispute.id}] {subject}"), text=text)
