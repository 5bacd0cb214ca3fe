"""A buyer's latest paid day follows refunds back, and stays right when refunds and new purchases of the same
customers commit at the same time (PostgreSQL: SQLite serialises write units of work)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import sqlalchemy as sa

from partners.db.session import Database
from partners.events.models import Purchase
from partners.rollups import service as rollups
from partners.rollups.models import PartnerBuyer
from partners.settings import Settings
from tests.commissions.support import T0, make_customer, make_purchase
from tests.factories import create_partner, create_program

CUSTOMERS = 12
DAY = timedelta(days=1)


async def assert_buyers_equal_a_recount(database: Database) -> None:
    async with database.read() as session:
        compared = await rollups.stored_and_recounted(session)
    for table in ("buyers", "days"):
        stored, recounted = compared[table]
        assert stored == recounted, (
            f"{table}: stored - recount {stored - recounted}, recount - stored {recounted - stored}"
        )


async def test_concurrent_refunds_and_purchases_of_the_same_customers(database: Database, settings: Settings) -> None:
    if database.dialect != "postgresql":
        pytest.skip("PostgreSQL only: SQLite serialises write units of work")
    async with database.write() as session:
        program, tiers = await create_program(session, settings)
        partner = await create_partner(session, program, tiers["starter"])
        customers = [await make_customer(session, program, partner) for _ in range(CUSTOMERS)]
        first = [await make_purchase(session, customer, 1_000, occurred_at=T0) for customer in customers]

    async def refund(purchase_id: int) -> None:
        async with database.write() as session:
            purchase = await session.get_one(Purchase, purchase_id)
            purchase.refunded_amount = purchase.amount

    async def buy_again(index: int) -> None:
        async with database.write() as session:
            await make_purchase(session, customers[index], 2_000, occurred_at=T0 + (index % 3 - 1) * DAY)

    await asyncio.gather(*(refund(p.id) for p in first), *(buy_again(i) for i in range(CUSTOMERS)))
    await assert_buyers_equal_a_recount(database)
    async with database.read() as session:
        buyers = await session.scalar(sa.select(sa.func.count()).select_from(PartnerBuyer))
    assert buyers == CUSTOMERS  # each has its second purchase, paid (the day before, the same day or the day after)

    async with database.write() as session:  # refund the second purchases too: no paying customer is left
        await session.execute(sa.update(Purchase).where(Purchase.amount == 2_000).values(refunded_amount=2_000))
    await assert_buyers_equal_a_recount(database)
    async with database.read() as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(PartnerBuyer)) == 0
