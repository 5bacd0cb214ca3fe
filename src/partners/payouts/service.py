"""Payout methods, payout requests and every payout's state changes (money through the ledger only).

Ledger flows (names kept across the project):
- `platform` / `payouts_clearing` per currency (kept as a sum, may go negative) is where paid money goes;
- request: reserve earnings_available → payouts_clearing under "payout:{id}:reserve" (the account's floor
  refuses more than is available, clawbacks included, and serialises concurrent requests);
- paid: post the hold; failed / cancelled: void it (available again);
- returned after paid: transfer payouts_clearing → earnings_available under "payout:{id}:returned".

A payout says which commissions it pays (PayoutAllocation, FIFO over approved money not yet paid) and which
clawbacks it nets; once a paid payout covers all of a commission, the commission is marked paid.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from partners.affiliates.models import Partner
from partners.commissions import accounts
from partners.commissions.models import Commission, CommissionAdjustment
from partners.db.session import dialect_insert
from partners.jobs.service import enqueue
from partners.kit.crypto import decrypt_text, encrypt_text, keyed_hash
from partners.kit.errors import (
    AppError,
    Conflict,
    IdempotencyConflict,
    InsufficientFunds,
    NotFound,
    Unprocessable,
)
from partners.ledger import service as ledger
from partners.ledger.models import LedgerAccount
from partners.mail.service import queue_email
from partners.payouts.methods import mask_details, validate_details
from partners.payouts.models import (
    LIVE_PAYOUT_STATUSES,
    Payout,
    PayoutAllocation,
    PayoutBatch,
    PayoutMethod,
)
from partners.payouts.providers.base import DETAIL_KEYS, PAYOUT_METHODS, currency_exponent
from partners.programs.models import Program
from partners.settings import Settings

PAYOUTS_CLEARING = "payouts_clearing"
PAYOUT_KIND = "payout"
CONFIRMATION_LIFETIME = timedelta(hours=48)
HOST_CALLBACK_JOB = "payouts.notify_host"
_payouts_table: Any = Payout.__table__


# --- accounts --------------------------------------------------------------------------------------------


async def payouts_clearing_account(session: AsyncSession, currency: str) -> LedgerAccount:
    return await ledger.open_account(
        session,
        owner=accounts.PLATFORM_OWNER,
        kind=PAYOUTS_CLEARING,
        currency=currency,
        may_go_negative=True,
        kept_as_sum=True,
    )


async def available_balance(session: AsyncSession, partner_id: int, currency: str) -> int:
    """What the partner may request now: earnings_available less what pending payouts reserve."""
    account = await accounts.earnings_available_account(session, partner_id, currency)
    return (await ledger.account_balance(session, account.id)).available


async def available_balances(session: AsyncSession, partner_id: int) -> dict[str, int]:
    result = await session.scalars(
        sa.select(LedgerAccount).where(
            LedgerAccount.owner == accounts.partner_owner(partner_id),
            LedgerAccount.kind == accounts.EARNINGS_AVAILABLE,
        )
    )
    return {account.currency: (await ledger.account_balance(session, account.id)).available for account in result.all()}


def minimum_amount(settings: Settings, currency: str) -> int:
    return settings.payout_minimum_minor(currency_exponent(currency))


# --- payout methods --------------------------------------------------------------------------------------


def encrypt_details(settings: Settings, details: dict[str, str]) -> str:
    return encrypt_text(settings, json.dumps(details, sort_keys=True))


def decrypt_details(settings: Settings, ciphertext: str, method: str) -> dict[str, str]:
    stored = json.loads(decrypt_text(settings, ciphertext))
    return {key: str(stored.get(key, "")) for key in DETAIL_KEYS[method]}


async def list_methods(session: AsyncSession, partner_id: int) -> list[PayoutMethod]:
    result = await session.scalars(
        sa.select(PayoutMethod).where(PayoutMethod.partner_id == partner_id).order_by(PayoutMethod.currency)
    )
    return list(result)


async def find_method(
    session: AsyncSession, partner_id: int, currency: str, *, for_update: bool = False
) -> PayoutMethod | None:
    query = sa.select(PayoutMethod).where(
        PayoutMethod.partner_id == partner_id, PayoutMethod.currency == currency.upper()
    )
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    return await session.scalar(query)


def _check_currency(currency: str) -> str:
    currency = currency.upper()
    if len(currency) != 3 or not (currency.isascii() and currency.isalpha()):
        raise Unprocessable("a currency is a three-letter ISO-4217 code", field="currency")
    return currency


async def _normalised_details(
    session: AsyncSession, partner: Partner, method: str, raw: dict[str, str], currency: str
) -> dict[str, str]:
    if method not in PAYOUT_METHODS:
        raise Unprocessable(f"unknown payout method {method!r}", field="method")
    if method == "platform_credit":
        return {"account_reference": partner.external_id or str(partner.id)}
    if method == "crypto":
        program = await session.get(Program, partner.program_id)
        if program is None or not program.allow_crypto_payouts:
            raise Unprocessable("this program does not pay to crypto addresses", field="method")
    return validate_details(method, raw, currency=currency)


async def _had_confirmed_method(session: AsyncSession, partner_id: int) -> bool:
    found = await session.scalar(
        sa.select(PayoutMethod.id).where(PayoutMethod.partner_id == partner_id, PayoutMethod.confirmed_at.is_not(None))
    )
    return found is not None


@dataclass(frozen=True, slots=True)
class MethodChange:
    method: PayoutMethod
    confirmation_token: str | None  # sent by email; None when no confirmation is needed


async def set_method(
    session: AsyncSession,
    settings: Settings,
    partner: Partner,
    *,
    currency: str,
    method: str,
    details: dict[str, str],
    now: datetime,
) -> MethodChange:
    """Set or replace the partner's payout method for a currency.

    Platform credit pays the partner's own host account, so it needs no confirmation. Any other method is
    confirmed through an emailed token, and if the partner already had confirmed payout details, payouts in
    this currency pause for PARTNERS_PAYOUT_DETAILS_COOLDOWN_HOURS (a stolen login changing the bank account
    is a common fraud path)."""
    currency = _check_currency(currency)
    normalised = await _normalised_details(session, partner, method, details, currency)
    cooldown = (
        now + timedelta(hours=settings.payout_details_cooldown_hours)
        if method != "platform_credit" and await _had_confirmed_method(session, partner.id)
        else None
    )
    token = None if method == "platform_credit" else secrets.token_urlsafe(32)
    row = await find_method(session, partner.id, currency, for_update=True)
    if row is None:
        row = PayoutMethod(partner_id=partner.id, currency=currency)
        session.add(row)
    row.method = method
    row.details_encrypted = encrypt_details(settings, normalised)
    row.details_masked = mask_details(method, normalised)
    row.confirmation_token_hash = None if token is None else _token_hash(settings, token)
    row.confirmation_expires_at = None if token is None else now + CONFIRMATION_LIFETIME
    row.confirmed_at = now if token is None else None
    row.cooldown_until = cooldown
    row.updated_at = now
    await session.flush()
    if token is not None:
        await _send_confirmation(session, settings, partner, row, token)
    return MethodChange(row, token)


def _token_hash(settings: Settings, token: str) -> str:
    return keyed_hash(settings, token, purpose="payout-method-confirmation")


async def _send_confirmation(
    session: AsyncSession, settings: Settings, partner: Partner, row: PayoutMethod, token: str
) -> None:
    shown = ", ".join(f"{key}: {value}" for key, value in row.details_masked.items() if value)
    await queue_email(
        session,
        to=partner.email,
        subject="Confirm your new payout details",
        text=(
            f"Hello {partner.name},\n\n"
            f"Your {row.method} payout details for {row.currency} were changed ({shown}).\n"
            f"If this was you, confirm the change with this token within 48 hours:\n\n{token}\n\n"
            f'POST {settings.base_url}/affiliate/payout/methods/confirm {{"token": "..."}}\n\n'
            "If it was not you, change your password at once and contact us: no payout is sent to details "
            "that are not confirmed."
        ),
    )


async def confirm_method(
    session: AsyncSession, settings: Settings, partner_id: int, token: str, *, now: datetime
) -> PayoutMethod:
    row = await session.scalar(
        sa.select(PayoutMethod)
        .where(PayoutMethod.confirmation_token_hash == _token_hash(settings, token))
        .with_for_update()
    )
    expired = row is not None and (row.confirmation_expires_at is None or row.confirmation_expires_at <= now)
    if row is None or row.partner_id != partner_id or expired:
        raise Unprocessable("this confirmation token is invalid or expired", field="token")
    row.confirmed_at = now
    row.confirmation_token_hash = None
    row.confirmation_expires_at = None
    await session.flush()
    return row


async def delete_method(session: AsyncSession, partner_id: int, currency: str) -> None:
    row = await find_method(session, partner_id, currency, for_update=True)
    if row is None:
        raise NotFound(f"no payout method for {currency.upper()}", field="currency")
    await session.delete(row)
    await session.flush()


def method_problem(row: PayoutMethod | None, currency: str, now: datetime) -> str | None:
    """Why payouts in this currency can't go out now, or None when they can."""
    if row is None:
        return f"no payout method is set for {currency}: add one first"
    if row.confirmed_at is None:
        return f"the {row.method} payout details for {currency} are not confirmed yet (see the email we sent)"
    if row.cooldown_until is not None and now < row.cooldown_until:
        return (
            f"the {row.method} payout details for {currency} changed recently; payouts resume at "
            f"{row.cooldown_until.isoformat()}"
        )
    return None


# --- requests --------------------------------------------------------------------------------------------


def _request_hash(amount: int, currency: str) -> str:
    return ledger.payload_hash({"amount": amount, "currency": currency})


async def _payout_by_key(session: AsyncSession, partner_id: int, key: str) -> Payout | None:
    return await session.scalar(sa.select(Payout).where(Payout.partner_id == partner_id, Payout.idempotency_key == key))


def _same_request(existing: Payout, digest: str) -> Payout:
    if existing.request_hash != digest:
        raise IdempotencyConflict("this Idempotency-Key was used for another payout request", field="Idempotency-Key")
    return existing


async def _insert_payout(session: AsyncSession, values: dict[str, Any]) -> int | None:
    """Insert unless (partner, idempotency key) exists; concurrent twins wait on the unique index."""
    statement = (
        dialect_insert(session, _payouts_table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["partner_id", "idempotency_key"])
        .returning(_payouts_table.c.id)
    )
    inserted = await session.execute(statement)
    payout_id: int | None = inserted.scalar_one_or_none()
    return payout_id


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    payout: Payout
    created: bool


async def request_payout(
    session: AsyncSession,
    settings: Settings,
    partner: Partner,
    *,
    amount: int,
    currency: str,
    now: datetime,
    idempotency_key: str | None = None,
    source: str = "request",
) -> RequestOutcome:
    """Reserve `amount` for a payout to the partner's method for `currency`.

    The same Idempotency-Key with the same amount and currency returns the payout made the first time;
    with another payload it is a 409."""
    currency = _check_currency(currency)
    digest = _request_hash(amount, currency)
    key = idempotency_key or f"request:{uuid.uuid4().hex}"
    existing = await _payout_by_key(session, partner.id, key)
    if existing is not None:
        return RequestOutcome(_same_request(existing, digest), created=False)
    if partner.status != "approved":
        raise Unprocessable(f"the partner account is {partner.status}, not approved", field="partner_id")
    minimum = minimum_amount(settings, currency)
    if amount < minimum:
        raise Unprocessable(f"the minimum payout is {minimum} (minor units of {currency})", field="amount")
    method = await find_method(session, partner.id, currency)
    problem = method_problem(method, currency, now)
    if problem is not None or method is None:
        raise Unprocessable(problem or "no payout method", field="method")
    available = await available_balance(session, partner.id, currency)
    if amount > available:
        raise InsufficientFunds(f"only {available} (minor units of {currency}) is available", field="amount")
    payout_id = await _insert_payout(
        session,
        {
            "partner_id": partner.id,
            "program_id": partner.program_id,
            "currency": currency,
            "amount": amount,
            "method": method.method,
            "details_encrypted": method.details_encrypted,
            "details_masked": method.details_masked,
            "status": "pending",
            "source": source,
            "idempotency_key": key,
            "request_hash": digest,
            "failure_reason": "",
            "created_at": now,
        },
    )
    if payout_id is None:
        found = await _payout_by_key(session, partner.id, key)
        assert found is not None
        return RequestOutcome(_same_request(found, digest), created=False)
    payout = await get_payout(session, payout_id)
    await _reserve(session, payout)
    await allocate(session, payout)
    return RequestOutcome(payout, created=True)


async def _reserve(session: AsyncSession, payout: Payout) -> None:
    source = await accounts.earnings_available_account(session, payout.partner_id, payout.currency)
    destination = await payouts_clearing_account(session, payout.currency)
    hold = await ledger.reserve(
        session,
        idempotency_key=f"payout:{payout.id}:reserve",
        kind=PAYOUT_KIND,
        source=source,
        destination=destination,
        amount=payout.amount,
        details={"payout_id": payout.id, "partner_id": payout.partner_id},
    )
    payout.hold_id = hold.id
    await session.flush()


# --- which commissions a payout pays ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CommissionPosition:
    """A commission's money on the available account: `net` credited there (approved amount less reversals,
    plus adjustments), `allocated` to live payouts; `remaining` < 0 is a clawback not netted yet."""

    commission_id: int
    net: int
    allocated: int

    @property
    def remaining(self) -> int:
        return self.net - self.allocated


async def commission_positions(session: AsyncSession, partner_id: int, currency: str) -> list[CommissionPosition]:
    """Every commission of the partner in `currency` with money on the available account, oldest first."""
    adjustments = (
        sa.select(
            CommissionAdjustment.commission_id.label("commission_id"),
            sa.func.sum(CommissionAdjustment.amount).label("total"),
        )
        .group_by(CommissionAdjustment.commission_id)
        .subquery()
    )
    allocated = (
        sa.select(
            PayoutAllocation.commission_id.label("commission_id"),
            sa.func.sum(PayoutAllocation.amount).label("total"),
        )
        .join(Payout, Payout.id == PayoutAllocation.payout_id)
        .where(Payout.status.in_(LIVE_PAYOUT_STATUSES))
        .group_by(PayoutAllocation.commission_id)
        .subquery()
    )
    rows = await session.execute(
        sa.select(
            Commission.id,
            Commission.amount,
            Commission.reversed_amount,
            Commission.approved_at,
            sa.func.coalesce(adjustments.c.total, 0),
            sa.func.coalesce(allocated.c.total, 0),
        )
        .outerjoin(adjustments, adjustments.c.commission_id == Commission.id)
        .outerjoin(allocated, allocated.c.commission_id == Commission.id)
        .where(
            Commission.partner_id == partner_id,
            Commission.currency == currency.upper(),
            sa.or_(Commission.approved_at.is_not(None), adjustments.c.total.is_not(None)),
        )
        .order_by(sa.func.coalesce(Commission.approved_at, Commission.created_at), Commission.id)
    )
    positions = []
    for commission_id, amount, reversed_amount, approved_at, adjusted, allocated_total in rows.all():
        net = (amount - reversed_amount if approved_at is not None else 0) + int(adjusted)
        positions.append(CommissionPosition(commission_id, net, int(allocated_total)))
    return positions


def plan_allocation(amount: int, positions: list[CommissionPosition]) -> list[tuple[int, int]]:
    """(commission_id, amount) lines for a payout of `amount`: clawbacks not netted yet come off first, so
    the commissions it pays sum to amount + the clawbacks it nets (as far as commissions cover it)."""
    debt = sum(-position.remaining for position in positions if position.remaining < 0)
    budget = amount + debt
    lines: list[tuple[int, int]] = []
    for position in positions:
        if budget <= 0:
            break
        if position.remaining > 0:
            take = min(position.remaining, budget)
            lines.append((position.commission_id, take))
            budget -= take
    to_net = max(0, debt - budget)  # what the commissions covered beyond `amount`
    for position in positions:
        if to_net <= 0:
            break
        if position.remaining < 0:
            take = min(-position.remaining, to_net)
            lines.append((position.commission_id, -take))
            to_net -= take
    return lines


async def allocate(session: AsyncSession, payout: Payout) -> list[PayoutAllocation]:
    """Record which commissions the payout pays. Runs after the reserve, whose row lock on the partner's
    available account serialises concurrent requests, so two payouts never claim the same money."""
    positions = await commission_positions(session, payout.partner_id, payout.currency)
    rows = [
        PayoutAllocation(payout_id=payout.id, commission_id=commission_id, amount=amount)
        for commission_id, amount in plan_allocation(payout.amount, positions)
    ]
    session.add_all(rows)
    await session.flush()
    return rows


async def allocations_of(session: AsyncSession, payout_id: int) -> list[PayoutAllocation]:
    result = await session.scalars(
        sa.select(PayoutAllocation).where(PayoutAllocation.payout_id == payout_id).order_by(PayoutAllocation.id)
    )
    return list(result)


async def _settle_commissions(session: AsyncSession, payout: Payout) -> None:
    """After a payout is paid: commissions whose whole net is covered by paid payouts are paid."""
    ids = [row.commission_id for row in await allocations_of(session, payout.id) if row.amount > 0]
    if not ids:
        return
    positions = {
        position.commission_id: position
        for position in await commission_positions(session, payout.partner_id, payout.currency)
    }
    unpaid_live = await session.scalars(
        sa.select(PayoutAllocation.commission_id)
        .join(Payout, Payout.id == PayoutAllocation.payout_id)
        .where(PayoutAllocation.commission_id.in_(ids), Payout.status.in_(("pending", "processing")))
    )
    waiting = set(unpaid_live)
    for commission in await session.scalars(sa.select(Commission).where(Commission.id.in_(ids)).with_for_update()):
        position = positions.get(commission.id)
        covered = position is not None and position.remaining <= 0
        if commission.status == "approved" and covered and commission.id not in waiting:
            commission.status = "paid"
    await session.flush()


async def _unsettle_commissions(session: AsyncSession, payout: Payout) -> None:
    """After a paid payout is returned: the commissions it paid are approved (unpaid) again."""
    ids = [row.commission_id for row in await allocations_of(session, payout.id) if row.amount > 0]
    if ids:
        await session.execute(
            sa.update(Commission)
            .where(Commission.id.in_(ids), Commission.status == "paid")
            .values(status="approved")
            .execution_options(synchronize_session=False)
        )


# --- reading ---------------------------------------------------------------------------------------------


async def get_payout(session: AsyncSession, payout_id: int, *, for_update: bool = False) -> Payout:
    query = sa.select(Payout).where(Payout.id == payout_id)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    payout = await session.scalar(query)
    if payout is None:
        raise NotFound(f"payout {payout_id} not found", field="payout_id")
    return payout


async def get_partner_payout(session: AsyncSession, partner_id: int, payout_id: int) -> Payout:
    """A partner's own payout; another partner's is a 404, as if it did not exist."""
    payout = await get_payout(session, payout_id)
    if payout.partner_id != partner_id:
        raise NotFound(f"payout {payout_id} not found", field="payout_id")
    return payout


@dataclass(frozen=True, slots=True)
class PayoutFilter:
    partner_id: int | None = None
    status: str | None = None
    method: str | None = None
    currency: str | None = None
    batch_id: int | None = None


async def list_payouts(
    session: AsyncSession, where: PayoutFilter, *, limit: int, offset: int
) -> tuple[list[Payout], int]:
    query = sa.select(Payout)
    if where.partner_id is not None:
        query = query.where(Payout.partner_id == where.partner_id)
    if where.status is not None:
        query = query.where(Payout.status == where.status)
    if where.method is not None:
        query = query.where(Payout.method == where.method)
    if where.currency is not None:
        query = query.where(Payout.currency == where.currency.upper())
    if where.batch_id is not None:
        query = query.where(Payout.batch_id == where.batch_id)
    total = await session.scalar(sa.select(sa.func.count()).select_from(query.subquery()))
    rows = await session.scalars(query.order_by(Payout.id.desc()).limit(limit).offset(offset))
    return list(rows), int(total or 0)


# --- state changes ---------------------------------------------------------------------------------------


async def _partner(session: AsyncSession, partner_id: int) -> Partner:
    partner = await session.get(Partner, partner_id)
    if partner is None:
        raise NotFound(f"partner {partner_id} not found", field="partner_id")
    return partner


def _hold_id(payout: Payout) -> int:
    if payout.hold_id is None:
        raise Conflict(f"payout {payout.id} has no ledger hold", field="payout_id")
    return payout.hold_id


def mark_processing(payout: Payout, reference: str | None, now: datetime) -> None:
    if payout.status == "pending":
        payout.status = "processing"
        payout.processing_at = now
    if reference:
        payout.reference = reference[:200]


async def mark_paid(session: AsyncSession, payout: Payout, reference: str | None, now: datetime) -> bool:
    """pending/processing → paid: the hold is posted. Returns False if the payout was already past it."""
    if payout.status not in ("pending", "processing"):
        return False
    await ledger.post_hold(session, _hold_id(payout))
    payout.status = "paid"
    payout.paid_at = now
    payout.processing_at = payout.processing_at or now
    if reference:
        payout.reference = reference[:200]
    await session.flush()
    await _settle_commissions(session, payout)
    if payout.method == "platform_credit":
        await enqueue(
            session,
            HOST_CALLBACK_JOB,
            {"payout_id": payout.id},
            unique_key=f"payout:{payout.id}:host-callback",
        )
    return True


async def mark_failed(session: AsyncSession, payout: Payout, reason: str, now: datetime) -> bool:
    """pending/processing → failed: the hold is voided (money available again), the partner is told why."""
    if payout.status not in ("pending", "processing"):
        return False
    await ledger.void_hold(session, _hold_id(payout))
    payout.status = "failed"
    payout.failed_at = now
    payout.failure_reason = (reason.strip() or "the payment was rejected")[:500]
    await session.flush()
    partner = await _partner(session, payout.partner_id)
    await queue_email(
        session,
        to=partner.email,
        subject=f"Your payout #{payout.id} failed",
        text=(
            f"Hello {partner.name},\n\nYour payout #{payout.id} of {_shown(payout)}"
            f" by {payout.method} failed: {payout.failure_reason}\n\nThe money is available in your balance "
            "again. Check your payout details and request it again."
        ),
    )
    return True


async def mark_returned(session: AsyncSession, payout: Payout, reason: str, now: datetime) -> bool:
    """paid → returned (the bank sent it back): the money goes back to the partner's available balance."""
    if payout.status != "paid":
        return False
    source = await payouts_clearing_account(session, payout.currency)
    destination = await accounts.earnings_available_account(session, payout.partner_id, payout.currency)
    await ledger.transfer(
        session,
        idempotency_key=f"payout:{payout.id}:returned",
        kind="payout_returned",
        source=source,
        destination=destination,
        amount=payout.amount,
        description=f"payout {payout.id} returned",
        details={"payout_id": payout.id},
    )
    payout.status = "returned"
    payout.returned_at = now
    payout.failure_reason = (reason.strip() or "the payment was returned by the bank")[:500]
    await session.flush()
    await _unsettle_commissions(session, payout)
    partner = await _partner(session, payout.partner_id)
    await queue_email(
        session,
        to=partner.email,
        subject=f"Your payout #{payout.id} was returned",
        text=(
            f"Hello {partner.name},\n\nYour payout #{payout.id} of {_shown(payout)}"
            f" was returned: {payout.failure_reason}\n\nThe money is back in your available balance."
        ),
    )
    return True


async def cancel_payout(session: AsyncSession, partner_id: int, payout_id: int, *, now: datetime) -> Payout:
    """The partner withdraws a pending request not yet approved for payment; the hold is voided."""
    payout = await get_partner_payout(session, partner_id, payout_id)
    payout = await get_payout(session, payout.id, for_update=True)
    if payout.status != "pending":
        raise Conflict(f"payout {payout_id} is {payout.status}; only pending payouts can be cancelled", field="status")
    if payout.batch_id is not None:
        batch = await session.get(PayoutBatch, payout.batch_id)
        if batch is not None and batch.status != "open":
            raise Conflict(f"payout {payout_id} is already approved for payment", field="status")
    await ledger.void_hold(session, _hold_id(payout))
    payout.status = "cancelled"
    payout.cancelled_at = now
    payout.batch_id = None
    await session.flush()
    return payout


def _shown(payout: Payout) -> str:
    return format_amount(payout.amount, payout.currency)


def format_amount(amount: int, currency: str) -> str:
    exponent = currency_exponent(currency)
    if exponent == 0:
        return f"{amount} {currency}"
    sign = "-" if amount < 0 else ""
    whole, fraction = divmod(abs(amount), 10**exponent)
    return f"{sign}{whole}.{fraction:0{exponent}d} {currency}"


# --- scheduled payouts -----------------------------------------------------------------------------------


def schedule_period(program: Program, now: datetime) -> str | None:
    """The period key a program's automatic payout is due for at `now`, or None when none is due.

    monthly: from `payout_day` (or the month's last day if shorter) on, once per month; quarterly: the same,
    in January, April, July and October, once per quarter."""
    if program.payout_schedule not in ("monthly", "quarterly"):
        return None
    next_month = (now.replace(day=1) + timedelta(days=32)).replace(day=1)
    last_day = (next_month - timedelta(days=1)).day
    if now.day < min(max(program.payout_day, 1), last_day):
        return None
    if program.payout_schedule == "monthly":
        return f"{now.year}-{now.month:02d}"
    if now.month % 3 != 1:
        return None
    return f"{now.year}-Q{(now.month - 1) // 3 + 1}"


async def run_scheduled_payouts(session: AsyncSession, settings: Settings, *, now: datetime) -> int:
    """Create this period's automatic payout for every eligible partner of every due program (approved,
    method confirmed and out of cool-down, available ≥ minimum). The key "schedule:{program}:{period}" makes
    a period's payout once per partner and currency, however often this runs. Returns how many were made."""
    created = 0
    for program in await session.scalars(sa.select(Program).where(Program.active.is_(True))):
        period = schedule_period(program, now)
        if period is None:
            continue
        rows = await session.execute(
            sa.select(Partner, PayoutMethod)
            .join(PayoutMethod, PayoutMethod.partner_id == Partner.id)
            .where(Partner.program_id == program.id, Partner.status == "approved")
            .order_by(Partner.id, PayoutMethod.currency)
        )
        for partner, method in rows.all():
            if method_problem(method, method.currency, now) is not None:
                continue
            if await _schedule_one(session, settings, partner, method.currency, f"{program.id}:{period}", now):
                created += 1
    return created


async def _schedule_one(
    session: AsyncSession, settings: Settings, partner: Partner, currency: str, period: str, now: datetime
) -> bool:
    key = f"schedule:{period}:{currency}"
    if await _payout_by_key(session, partner.id, key) is not None:
        return False
    amount = await available_balance(session, partner.id, currency)
    if amount < max(minimum_amount(settings, currency), 1):
        return False
    try:
        async with session.begin_nested():
            outcome = await request_payout(
                session, settings, partner, amount=amount, currency=currency, now=now,
                idempotency_key=key, source="schedule",
            )  # fmt: skip
    except AppError:
        return False  # e.g. spent by a request in the meantime: next period
    return outcome.created


def group_totals(payouts: list[Payout]) -> dict[tuple[str, str], tuple[int, int]]:
    """(method, currency) → (count, amount)."""
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for payout in payouts:
        entry = totals[(payout.method, payout.currency)]
        entry[0] += 1
        entry[1] += payout.amount
    return {key: (count, amount) for key, (count, amount) in totals.items()}
