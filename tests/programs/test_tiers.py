"""Automatic promotion and demotion over a rolling window, with history, idempotent per period."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from partners.affiliates.models import Partner
from partners.audit.service import Actor
from partners.db.session import Database
from partners.db.types import utcnow
from partners.events.models import Purchase
from partners.jobs.models import Job
from partners.jobs.registry import load_handlers
from partners.jobs.worker import run_once, tick_schedules
from partners.programs import service
from partners.programs.models import Program, Tier, TierChange
from partners.programs.rules import Metrics, choose_tier, rule_met
from partners.settings import Settings
from tests.commissions.support import T0, make_customer, make_purchase
from tests.factories import create_partner, create_program

STAFF = Actor("staff", "1")
DAY = timedelta(days=1)


async def customers_buying(
    session: AsyncSession, program: Program, partner: Partner, count: int, amount: int, *, days_ago: int = 5
) -> None:
    for _ in range(count):
        customer = await make_customer(session, program, partner)
        await make_purchase(session, customer, amount, occurred_at=T0 - days_ago * DAY)


async def history(database: Database, partner_id: int) -> list[TierChange]:
    async with database.read() as session:
        return await service.tier_history(session, partner_id)


async def tier_of(database: Database, partner_id: int) -> int:
    async with database.read() as session:
        partner = await session.get(Partner, partner_id)
        assert partner is not None
        return partner.tier_id


async def evaluate(database: Database, now: datetime = T0) -> list[TierChange]:
    async with database.write() as session:
        return await service.evaluate_tiers(session, now=now)


async def test_a_partner_meeting_the_pro_rule_is_promoted_once_with_its_metrics(
    database: Database, settings: Settings
) -> None:
    async with database.write() as session:
        program, tiers = await create_program(session, settings)
        climber = await create_partner(session, program, tiers["starter"])
        almost = await create_partner(session, program, tiers["starter"])
        await customers_buying(session, program, climber, 10, 50_000)  # 5,000.00 from 10 customers
        await customers_buying(session, program, almost, 9, 60_000)  # enough revenue, 9 customers
        await customers_buying(session, program, almost, 1, 60_000, days_ago=91)  # outside the window
        pro_id = tiers["pro"].id
        starter_id = tiers["starter"].id

    changes = await evaluate(database)
    assert [(c.partner_id, c.reason, c.from_tier_id, c.to_tier_id) for c in changes] == [
        (climber.id, "promotion", starter_id, pro_id)
    ]
    assert await tier_of(database, climber.id) == pro_id
    assert await tier_of(database, almost.id) == starter_id
    [change] = await history(database, climber.id)
    assert change.period_key == T0.strftime("%Y-%m-%d")
    assert change.metrics["windows"]["90"] == {"revenue": 500_000, "active_customers": 10, "referrals": 0}

    assert await evaluate(database) == []  # same period: nothing more
    assert await evaluate(database, T0 + DAY) == []  # next period: still a pro, no new history
    assert len(await history(database, climber.id)) == 1


async def test_a_partner_below_its_tiers_rule_is_demoted_to_the_highest_rule_it_meets(
    database: Database, settings: Settings
) -> None:
    async with database.write() as session:
        program, tiers = await create_program(session, settings)
        fallen = await create_partner(session, program, tiers["enterprise"])
        steady = await create_partner(session, program, tiers["enterprise"])
        idle = await create_partner(session, program, tiers["pro"])
        whitelabel = await create_partner(session, program, tiers["whitelabel"])
        await customers_buying(session, program, fallen, 12, 50_000)  # meets pro, not enterprise
        await customers_buying(session, program, steady, 50, 100_000)
        ids = {key: tier.id for key, tier in tiers.items()}

    changes = await evaluate(database)
    assert sorted((c.partner_id, c.reason, c.to_tier_id) for c in changes) == sorted(
        [(fallen.id, "demotion", ids["pro"]), (idle.id, "demotion", ids["starter"])]
    )
    assert await tier_of(database, steady.id) == ids["enterprise"]
    assert await tier_of(database, whitelabel.id) == ids["whitelabel"]  # staff-assigned only, never automatic


async def test_one_automatic_change_per_partner_and_period(database: Database, settings: Settings) -> None:
    async with database.write() as session:
        program, tiers = await create_program(session, settings)
        partner = await create_partner(session, program, tiers["starter"])
        await customers_buying(session, program, partner, 10, 50_000, days_ago=0)
    async with database.write() as session:
        customer = await make_customer(session, program, partner)
        await make_purchase(session, customer, 50_000, occurred_at=T0 - timedelta(hours=1))

    [promotion] = await evaluate(database, T0 + timedelta(hours=1))
    assert promotion.reason == "promotion"
    async with database.write() as session:  # everything refunded later the same day
        await session.execute(sa.update(Purchase).values(refunded_amount=Purchase.amount))
    assert await evaluate(database, T0 + timedelta(hours=2)) == []
    [demotion] = await evaluate(database, T0 + DAY)
    assert (demotion.reason, demotion.period_key) == ("demotion", (T0 + DAY).strftime("%Y-%m-%d"))


async def test_a_staff_assigned_tier_is_a_floor(database: Database, settings: Settings) -> None:
    async with database.write() as session:
        program, tiers = await create_program(session, settings)
        partner = await create_partner(session, program, tiers["starter"])
        await service.assign_tier(session, STAFF, partner.id, tiers["pro"].id, reason="strategic")
        ids = {key: tier.id for key, tier in tiers.items()}

    assert await evaluate(database) == []  # meets no rule, but stays in the tier staff chose
    assert await tier_of(database, partner.id) == ids["pro"]
    async with database.write() as session:
        await customers_buying(session, program, partner, 50, 100_000)
    [change] = await evaluate(database, T0 + DAY)
    assert (change.reason, change.to_tier_id) == ("promotion", ids["enterprise"])
    reasons = [c.reason for c in await history(database, partner.id)]
    assert reasons == ["admin", "promotion"]


async def test_referrals_count_new_approved_direct_sub_affiliates_in_the_window(
    database: Database, settings: Settings
) -> None:
    async with database.write() as session:
        program, tiers = await create_program(session, settings)
        recruiter = await create_partner(session, program, tiers["starter"])
        await service.update_tier(session, STAFF, tiers["pro"].id, promotion_rule={"min_referrals": 2})
        await create_partner(session, program, tiers["starter"], parent=recruiter, created_at=T0 - DAY)
        await create_partner(session, program, tiers["starter"], parent=recruiter, status="pending", created_at=T0)
        await create_partner(session, program, tiers["starter"], parent=recruiter, created_at=T0 - 100 * DAY)
    assert await evaluate(database, T0 + timedelta(seconds=1)) == []
    async with database.write() as session:
        await create_partner(session, program, tiers["starter"], parent=recruiter, created_at=T0 - DAY)
    [change] = await evaluate(database, T0 + DAY)
    assert change.metrics["windows"]["90"]["referrals"] == 2


async def test_window_metrics_from_the_rollups_equal_a_count_of_the_purchases(
    database: Database, settings: Settings
) -> None:
    """The window is the 90 UTC days ending with today; revenue and active customers are read from the daily
    rollups, or counted from the purchases for a partner with a customer whose latest sale is after the window."""
    first, last = service.rule_window(T0, 90)
    assert (first, last) == ((T0 - 89 * DAY).date(), T0.date())
    first_moment = datetime.combine(first, time(), tzinfo=UTC)
    async with database.write() as session:
        program, tiers = await create_program(session, settings)
        partner = await create_partner(session, program, tiers["starter"])
        ahead = await create_partner(session, program, tiers["starter"])
        early, before, euro, refunded, partial, returned = [
            await make_customer(session, program, partner) for _ in range(6)
        ]
        await make_purchase(session, early, 10_000, occurred_at=first_moment)  # the window's first moment
        await make_purchase(session, before, 20_000, occurred_at=first_moment - timedelta(seconds=1))
        await make_purchase(session, euro, 4_000, currency="EUR")  # a paying customer, not program revenue
        await make_purchase(session, refunded, 9_000, refunded=9_000)  # refunded in full when recorded
        await make_purchase(session, partial, 8_000, refunded=3_000)
        later_refunded = await make_purchase(session, returned, 6_000, occurred_at=T0 - DAY)
        regular = await make_customer(session, program, ahead)
        await make_purchase(session, regular, 1_000, occurred_at=T0 - DAY)
        await make_purchase(session, regular, 2_000, occurred_at=T0 + 2 * DAY)  # after the window
    async with database.write() as session:
        stored = await session.get_one(Purchase, later_refunded.id)
        stored.refunded_amount = stored.amount

    async with database.read() as session:
        found = await service.window_metrics(session, program, first=first, last=last)
        recount = await service.paying_customers(session, [partner.id, ahead.id], first, last)
    assert found[partner.id] == Metrics(revenue=10_000 + 5_000, active_customers=3, referrals=0)  # early, euro, partial
    assert found[ahead.id] == Metrics(revenue=1_000, active_customers=1, referrals=0)  # from the purchases
    assert recount == {partner.id: 3, ahead.id: 1}
    async with database.read() as session:
        progress = await service.tier_progress(session, partner, now=T0)
    assert progress.metrics == found[partner.id]


def test_choose_tier_is_the_highest_reachable_tier_whose_rule_is_met() -> None:
    def tier(rank: int, **rule: int) -> Tier:
        return Tier(rank=rank, promotion_rule=rule)

    entry, mid, top, staff = (
        tier(1, min_revenue=10**9),
        tier(2, min_revenue=100),
        tier(3, min_revenue=1000),
        tier(4),
    )
    tiers = [entry, mid, top, staff]
    windows = {90: Metrics(revenue=500, active_customers=0, referrals=0)}
    assert choose_tier(tiers, entry, windows) is mid  # the entry tier needs no rule met
    assert choose_tier(tiers, top, windows) is mid
    assert choose_tier(tiers, staff, windows) is staff
    assert choose_tier(tiers, mid, windows, floor=top) is top
    assert rule_met({}, Metrics(0, 0, 0))
    assert not rule_met({"min_active_customers": 1}, Metrics(10**9, 0, 5))


async def test_the_daily_schedule_runs_the_evaluation(database: Database, settings: Settings) -> None:
    load_handlers()
    async with database.write() as session:
        program, tiers = await create_program(session, settings)
        partner = await create_partner(session, program, tiers["starter"])
        for _ in range(10):  # the handler reads the real clock: purchases yesterday, really
            customer = await make_customer(session, program, partner)
            await make_purchase(session, customer, 50_000, occurred_at=utcnow() - DAY)
    now = utcnow()
    # Ticked again later the same UTC day (3 hours later would be the next day after 21:00).
    later_that_day = max(now, min(now + timedelta(hours=3), now.replace(hour=23, minute=59, second=59)))
    await tick_schedules(database, settings, now=now)
    await tick_schedules(database, settings, now=later_that_day)
    async with database.read() as session:
        keys = list(await session.scalars(sa.select(Job.unique_key).where(Job.name == "programs.evaluate_tiers")))
    assert keys == [f"schedule:programs.evaluate_tiers:{now:%Y-%m-%d}"]
    await run_once(database, worker_id="test", now=now + timedelta(hours=4))
    [change] = await history(database, partner.id)
    assert (change.reason, change.to_tier_id, change.period_key) == (
        "promotion",
        tiers["pro"].id,
        f"{now:%Y-%m-%d}",
    )
