"""The console's reports on a known data set."""

from __future__ import annotations

from partners.dashboard.service import Window
from partners.db.session import Database
from partners.settings import Settings
from partners.web import reports
from tests.commissions.support import T0, make_customer, make_purchase
from tests.factories import create_partner, create_program


async def test_top_partners_count_paying_customers_and_net_revenue(database: Database, settings: Settings) -> None:
    async with database.write() as session:
        program, tiers = await create_program(session, settings)
        big = await create_partner(session, program, tiers["starter"])
        small = await create_partner(session, program, tiers["starter"])
        for amount, refunded in ((10_000, 0), (8_000, 3_000), (9_000, 9_000)):  # the last refunded in full
            await make_purchase(session, await make_customer(session, program, big), amount, refunded=refunded)
        await make_purchase(session, await make_customer(session, program, small), 4_000)
        await make_purchase(session, await make_customer(session, program, small), 6_000, currency="EUR")
    async with database.read() as session:
        top = await reports.top_partners(session, Window(T0.date(), T0.date()), "USD")
    assert [(row.id, row.customers, row.revenue) for row in top] == [(big.id, 2, 15_000), (small.id, 1, 4_000)]
