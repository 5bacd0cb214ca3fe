"""The default program and the rates a partner earns: tiers, bonus steps, ceiling, overrides, hold days."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from partners.audit.service import Actor
from partners.commissions.earners import load_chain
from partners.db.session import Database
from partners.events.models import Purchase
from partners.programs import service
from partners.programs.models import Program, Tier
from partners.settings import Settings
from tests.commissions.support import T0, make_customer, make_purchase
from tests.factories import create_partner, create_program

STAFF = Actor("staff", "1")
EARLIER = T0 - timedelta(hours=1)


async def test_the_default_program_is_created_once_with_the_default_tiers(
    database: Database, settings: Settings
) -> None:
    async with database.write() as session:
        first = await service.ensure_default_program(session, settings)
    async with database.write() as session:
        second = await service.ensure_default_program(session, settings)
        tiers = await service.list_tiers(session, second.id)
        programs = await session.scalar(sa.select(sa.func.count()).select_from(Program))
    assert first.id == second.id and first.slug == "namaskah" and first.is_default
    assert programs == 1
    assert [(t.key, t.base_rate_bps, t.ceiling_rate_bps) for t in tiers] == [
        ("starter", 500, 1000),
        ("pro", 1500, 2000),
        ("enterprise", 2500, 3000),
        ("whitelabel", 4000, 5000),
    ]


async def test_an_existing_default_program_is_the_default(database: Database, settings: Settings) -> None:
    async with database.write() as session:
        program, _tiers = await create_program(session, settings, slug="main")
        found = await service.ensure_default_program(session, settings)
        count = await session.scalar(sa.select(sa.func.count()).select_from(Tier))
    assert found.id == program.id and count == 4


async def test_level_one_rate_is_lifted_by_this_months_revenue_up_to_the_ceiling(
    database: Database, settings: Settings
) -> None:
    async with database.write() as session:
        program, tiers = await create_program(session, settings)
        partner = await create_partner(session, program, tiers["starter"])
        customer = await make_customer(session, program, partner)

        async def level1() -> int:
            rates = await service.effective_rates(session, partner, currency="USD", at=T0)
            return rates.level1_rate_bps

        assert await level1() == 500
        # last month, another currency, and refunded money do not count
        await make_purchase(session, customer, 900_000, occurred_at=service.month_start(T0) - timedelta(seconds=1))
        await make_purchase(session, customer, 900_000, currency="EUR", occurred_at=EARLIER)
        await make_purchase(session, customer, 100_000, refunded=1, occurred_at=EARLIER)
        assert await level1() == 500
        await make_purchase(session, customer, 1, occurred_at=EARLIER)  # net revenue now exactly 100,000
        assert await level1() == 750
        await make_purchase(session, customer, 400_000, occurred_at=EARLIER)
        assert await level1() == 1000
        # a purchase at `at` or later is not "before" the moment priced
        await make_purchase(session, customer, 10**9, occurred_at=T0)
        assert await level1() == 1000

        tiers["starter"].bonus_steps = [{"threshold": 0, "rate_bps": 2500}]  # misconfigured above the ceiling
        await session.flush()
        rates = await service.effective_rates(session, partner, currency="USD", at=T0)
    assert rates.level1_rate_bps == 1000 == rates.ceiling_rate_bps
    assert (rates.level2_rate_bps, rates.level3_rate_bps, rates.hold_days) == (200, 100, 30)
    assert rates.monthly_revenue == 500_000 and rates.currency == "USD" and not rates.overridden


async def test_an_override_is_the_negotiated_rate_without_bonus_on_top(database: Database, settings: Settings) -> None:
    async with database.write() as session:
        program, tiers = await create_program(session, settings)
        partner = await create_partner(session, program, tiers["pro"])
        customer = await make_customer(session, program, partner)
        await make_purchase(session, customer, 2_000_000, occurred_at=T0 - timedelta(days=1))
        before = await service.effective_rates(session, partner, currency="USD", at=T0)
        await service.set_override(
            session,
            STAFF,
            partner.id,
            base_rate_bps=1600,
            level2_rate_bps=450,
            level3_rate_bps=None,
            reason="deal",
        )
        after = await service.effective_rates(session, partner, currency="USD", at=T0)
        await service.clear_override(session, STAFF, partner.id, reason="deal ended")
        cleared = await service.effective_rates(session, partner, currency="USD", at=T0)
    assert before.level1_rate_bps == 2000  # bonus steps of the pro tier
    assert (after.level1_rate_bps, after.level2_rate_bps, after.level3_rate_bps) == (1600, 450, 150)
    assert after.overridden and after.base_rate_bps == 1600
    assert cleared.level1_rate_bps == 2000 and not cleared.overridden


async def test_new_partners_carry_the_programs_extra_hold_days(database: Database, settings: Settings) -> None:
    async with database.write() as session:
        program, tiers = await create_program(
            session, settings, new_partner_extra_hold_days=10, new_partner_period_days=90
        )
        newcomer = await create_partner(session, program, tiers["enterprise"])
        veteran = await create_partner(session, program, tiers["enterprise"])
        newcomer.approved_at = T0 - timedelta(days=89)
        veteran.approved_at = T0 - timedelta(days=90)
        new_rates = await service.effective_rates(session, newcomer, currency="USD", at=T0)
        old_rates = await service.effective_rates(session, veteran, currency="USD", at=T0)
    assert (new_rates.hold_days, old_rates.hold_days) == (24, 14)


async def test_the_months_revenue_adds_up_rollup_days_unwritten_deltas_and_the_sales_own_day(
    database: Database, settings: Settings
) -> None:
    """Whole days before the sale's day come from the daily rollups (committed) plus the unit of work's own
    deltas (written at commit); the sale's day from the purchases. Whatever the mix, the figure equals the
    month's purchases summed row by row, and the chain query (`earners.load_chain`) agrees."""
    at = T0  # 2026-03-10 12:00 UTC
    async with database.write() as session:
        program, tiers = await create_program(session, settings)
        partner = await create_partner(session, program, tiers["starter"])
        customer = await make_customer(session, program, partner)
        first = await make_purchase(session, customer, 5_000, occurred_at=service.month_start(at))
        fifth = await make_purchase(session, customer, 7_000, occurred_at=at - timedelta(days=5))
        await make_purchase(session, customer, 100_000, occurred_at=service.month_start(at) - timedelta(seconds=1))
        await make_purchase(session, customer, 1_000, occurred_at=at - timedelta(hours=4))  # its own day
        await make_purchase(session, customer, 50, occurred_at=at)  # not before the sale
        await make_purchase(session, customer, 9_999, occurred_at=at + timedelta(days=1))
        fifth.refunded_amount = 2_000
    async with database.write() as session:  # committed above; now this unit of work's own, unwritten
        customer = await session.get_one(type(customer), customer.id)
        await make_purchase(session, customer, 3_000, occurred_at=at - timedelta(days=7))
        await make_purchase(session, customer, 400, occurred_at=at - timedelta(hours=3))
        (await session.get_one(type(first), first.id)).refunded_amount = 500
        await session.flush()
        inside = await service.referred_revenue(session, partner.id, currency="USD", at=at)
        chain = await load_chain(session, partner.id, currency="USD", at=at)
        recount = await session.scalar(
            sa.select(sa.func.sum(Purchase.amount - Purchase.refunded_amount)).where(
                Purchase.partner_id == partner.id,
                Purchase.occurred_at >= service.month_start(at),
                Purchase.occurred_at < at,
            )
        )
    async with database.read() as session:
        after_commit = await service.referred_revenue(session, partner.id, currency="USD", at=at)
    assert inside == recount == chain.members[0].monthly_revenue == after_commit
    assert inside == (5_000 - 500) + (7_000 - 2_000) + 3_000 + 1_000 + 400
