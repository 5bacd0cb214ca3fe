"""Builders shared by the programs and commissions tests: customers, purchases, staff logins, balances."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from partners.affiliates.models import Partner
from partners.commissions import accounts
from partners.db.session import Database
from partners.events.models import Purchase
from partners.ledger import service as ledger
from partners.programs.models import Program
from partners.tracking.models import Customer

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
PASSWORD = "correct horse battery staple"


async def make_customer(
    session: AsyncSession, program: Program, partner: Partner | None, *, external_id: str | None = None
) -> Customer:
    customer = Customer(
        external_id=external_id or f"cust-{secrets.token_hex(4)}",
        email="customer@example.com",
        program_id=program.id,
        partner_id=partner.id if partner else None,
        attributed_via="referral_code" if partner else None,
        attributed_at=T0 if partner else None,
    )
    session.add(customer)
    await session.flush()
    return customer


async def make_purchase(
    session: AsyncSession,
    customer: Customer,
    amount: int,
    *,
    currency: str = "USD",
    occurred_at: datetime = T0,
    refunded: int = 0,
) -> Purchase:
    purchase = Purchase(
        external_id=f"pur-{secrets.token_hex(6)}",
        customer_id=customer.id,
        partner_id=customer.partner_id,
        amount=amount,
        currency=currency,
        product="sms",
        occurred_at=occurred_at,
        refunded_amount=refunded,
        status="completed",
    )
    session.add(purchase)
    if customer.first_purchase_at is None:
        customer.first_purchase_at = occurred_at
    await session.flush()
    return purchase


async def balances(database: Database, partner_id: int, currency: str = "USD") -> tuple[int, int]:
    """(earnings_pending, earnings_available) posted balances of a partner."""
    async with database.write() as session:
        pending = await accounts.earnings_pending_account(session, partner_id, currency)
        available = await accounts.earnings_available_account(session, partner_id, currency)
        return (
            (await ledger.account_balance(session, pending.id)).posted,
            (await ledger.account_balance(session, available.id)).posted,
        )


async def expense(database: Database, currency: str = "USD") -> int:
    async with database.write() as session:
        account = await accounts.commission_expense_account(session, currency)
        return (await ledger.account_balance(session, account.id)).posted
