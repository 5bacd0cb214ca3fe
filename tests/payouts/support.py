"""Builders for the payouts tests: a program with partners, approved commissions with ledger money behind
them, confirmed payout methods, staff logins, balances, and the outbox runner."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from partners.affiliates.models import Partner
from partners.commissions import accounts
from partners.commissions import service as commissions
from partners.commissions.models import Commission
from partners.db.session import Database
from partners.events.models import Purchase
from partners.identity.roles import Role
from partners.jobs.models import Job
from partners.jobs.worker import run_once
from partners.ledger import service as ledger
from partners.mail import tasks as mail_tasks
from partners.payouts import service
from partners.payouts import tasks as payout_tasks
from partners.programs.models import Program
from partners.settings import Settings
from tests.commissions.support import make_customer, make_purchase
from tests.factories import create_partner, create_program, partner_headers, staff_headers

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
LONG_AGO = T0 - timedelta(days=400)


@dataclass
class World:
    program: Program
    alice: Partner
    bob: Partner


async def make_world(database: Database, settings: Settings, **program_fields: object) -> World:
    async with database.write() as session:
        program, tiers = await create_program(session, settings, **program_fields)
        alice = await create_partner(session, program, tiers["starter"], name="Alice Example")
        bob = await create_partner(session, program, tiers["starter"], name="Bob Example")
        return World(program, alice, bob)


def use_test_settings(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    """Job handlers read get_settings(); in tests they must see the test's settings."""
    monkeypatch.setattr(payout_tasks, "get_settings", lambda: settings)
    monkeypatch.setattr(mail_tasks, "get_settings", lambda: settings)


async def earn(
    session: AsyncSession,
    program: Program,
    partner: Partner,
    amount: int,
    *,
    currency: str = "USD",
    approved_at: datetime = T0,
) -> Commission:
    """An approved level-1 commission of `amount` with its money on the partner's available account (the
    same two ledger moves the commission engine makes: credited pending, then approved)."""
    customer = await make_customer(session, program, partner)
    purchase = await make_purchase(session, customer, amount * 10, currency=currency)
    commission = Commission(
        purchase_id=purchase.id,
        partner_id=partner.id,
        level=1,
        currency=currency,
        base_amount=purchase.amount,
        rate_bps=1000,
        amount=amount,
        reversed_amount=0,
        status="approved",
        payable_at=approved_at,
        approved_at=approved_at,
    )
    session.add(commission)
    await session.flush()
    expense = await accounts.commission_expense_account(session, currency)
    available = await accounts.earnings_available_account(session, partner.id, currency)
    await ledger.transfer(
        session,
        idempotency_key=f"test:commission:{commission.id}",
        kind="commission_approval",
        source=expense,
        destination=available,
        amount=amount,
        details={"commission_id": commission.id},
    )
    return commission


async def refund(session: AsyncSession, commission_id: int, fraction_refunded: float, *, key: str) -> int:
    """Refund part of a commission's purchase through the commission engine; returns the clawback."""
    commission = await session.get(Commission, commission_id)
    assert commission is not None
    purchase = await session.get(Purchase, commission.purchase_id)
    assert purchase is not None
    before = commission.reversed_amount
    new_refunded = min(purchase.amount, purchase.refunded_amount + round(purchase.amount * fraction_refunded))
    await commissions.reverse_commissions_for_refund(
        session,
        purchase=purchase,
        previous_refunded=purchase.refunded_amount,
        new_refunded=new_refunded,
        refund_key=key,
        reason="refund",
        now=T0,
    )
    purchase.refunded_amount = new_refunded
    await session.flush()
    await session.refresh(commission)
    return commission.reversed_amount - before


async def confirmed_method(
    database: Database,
    settings: Settings,
    partner: Partner,
    *,
    currency: str = "USD",
    method: str = "platform_credit",
    details: dict[str, str] | None = None,
) -> None:
    """A payout method, confirmed and out of cool-down."""
    async with database.write() as session:
        fresh = await session.get(Partner, partner.id)
        assert fresh is not None
        change = await service.set_method(
            session, settings, fresh, currency=currency, method=method, details=details or {}, now=LONG_AGO
        )
        if change.confirmation_token:
            await service.confirm_method(session, settings, partner.id, change.confirmation_token, now=LONG_AGO)
        change.method.cooldown_until = None


async def headers_for(database: Database, settings: Settings, partner: Partner) -> dict[str, str]:
    async with database.write() as session:
        return await partner_headers(session, settings, partner)


async def staff(database: Database, settings: Settings, role: Role) -> dict[str, str]:
    async with database.write() as session:
        return await staff_headers(session, settings, role)


class Balances(NamedTuple):
    posted: int
    available: int
    clearing: int


async def balances(database: Database, partner_id: int, currency: str = "USD") -> Balances:
    """The partner's earnings_available (posted, available) and the platform's payouts_clearing."""
    async with database.write() as session:
        account = await accounts.earnings_available_account(session, partner_id, currency)
        balance = await ledger.account_balance(session, account.id)
        clearing = await service.payouts_clearing_account(session, currency)
        cleared = await ledger.account_balance(session, clearing.id)
        return Balances(balance.posted, balance.available, cleared.posted)


async def run_jobs(database: Database, *, limit: int = 50) -> int:
    """Drain the outbox (at most `limit` rounds)."""
    total = 0
    for _ in range(limit):
        ran = await run_once(database, worker_id="tests")
        if not ran:
            break
        total += ran
    return total


async def jobs_named(database: Database, name: str) -> list[Job]:
    async with database.read() as session:
        return list(await session.scalars(sa.select(Job).where(Job.name == name).order_by(Job.id)))


def random_suffix() -> str:
    return secrets.token_hex(3)
