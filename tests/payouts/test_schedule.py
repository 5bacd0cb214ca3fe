"""Automatic payouts: monthly on the program's payout day or quarterly, once per period (by key), only for
partners above the minimum with a confirmed method out of cool-down."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from partners.affiliates.models import Partner
from partners.db.session import Database
from partners.jobs.registry import load_handlers
from partners.jobs.worker import tick_schedules
from partners.payouts import service
from partners.payouts.models import Payout
from partners.programs.models import Program, Tier
from partners.settings import Settings
from tests.factories import create_partner
from tests.payouts.support import (
    World,
    balances,
    confirmed_method,
    earn,
    make_world,
    run_jobs,
    use_test_settings,
)


def _program(schedule: str, day: int) -> Program:
    return Program(slug="p", name="p", payout_schedule=schedule, payout_day=day)


@pytest.mark.parametrize(
    ("schedule", "day", "now", "period"),
    [
        ("monthly", 15, datetime(2026, 3, 14, 23, 59, tzinfo=UTC), None),
        ("monthly", 15, datetime(2026, 3, 15, tzinfo=UTC), "2026-03"),
        ("monthly", 15, datetime(2026, 3, 31, tzinfo=UTC), "2026-03"),
        ("monthly", 31, datetime(2026, 2, 27, tzinfo=UTC), None),
        ("monthly", 31, datetime(2026, 2, 28, tzinfo=UTC), "2026-02"),
        ("quarterly", 1, datetime(2026, 4, 1, tzinfo=UTC), "2026-Q2"),
        ("quarterly", 1, datetime(2026, 5, 1, tzinfo=UTC), None),
        ("quarterly", 10, datetime(2026, 10, 9, tzinfo=UTC), None),
        ("quarterly", 10, datetime(2026, 10, 10, tzinfo=UTC), "2026-Q4"),
        ("manual", 1, datetime(2026, 4, 20, tzinfo=UTC), None),
    ],
)
def test_schedule_period(schedule: str, day: int, now: datetime, period: str | None) -> None:
    assert service.schedule_period(_program(schedule, day), now) == period


async def _payouts(database: Database) -> list[tuple[int, int, str]]:
    async with database.read() as session:
        rows = await session.execute(
            sa.select(Payout.partner_id, Payout.amount, Payout.source).order_by(Payout.partner_id, Payout.id)
        )
        return [(partner_id, amount, source) for partner_id, amount, source in rows.all()]


async def test_the_daily_job_pays_eligible_partners_once_per_period(
    database: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_handlers()
    use_test_settings(monkeypatch, settings)
    world: World = await make_world(database, settings, payout_schedule="monthly", payout_day=15)
    async with database.write() as session:
        program = await session.get(Program, world.program.id)
        assert program is not None
        tier = await session.get(Tier, world.alice.tier_id)
        assert tier is not None
        carol = await create_partner(session, program, tier, name="Carol")
        dave = await create_partner(session, program, tier, name="Dave")
        await earn(session, program, world.alice, 7_000)
        await earn(session, program, world.bob, 4_999)  # below the 50.00 minimum
        await earn(session, program, carol, 9_000)
        await earn(session, program, dave, 9_000)
    for partner in (world.alice, world.bob, carol):
        await confirmed_method(database, settings, partner)
    async with database.write() as session:
        row = await service.find_method(session, carol.id, "USD")
        assert row is not None
        row.cooldown_until = datetime(2026, 3, 20, tzinfo=UTC)  # carol changed her details recently
    await service_set_unconfirmed(database, settings, dave)

    before = datetime(2026, 3, 14, 8, tzinfo=UTC)
    await tick_schedules(database, settings, now=before)
    await run_jobs(database)
    assert await _payouts(database) == []

    payday = datetime(2026, 3, 15, 8, tzinfo=UTC)
    await tick_schedules(database, settings, now=payday)
    await tick_schedules(database, settings, now=payday + timedelta(hours=1))  # another worker, same day
    await run_jobs(database)
    assert await _payouts(database) == [(world.alice.id, 7_000, "schedule")]
    assert await balances(database, world.alice.id) == (7_000, 0, 0)

    # later in the month: the period's key is used up, even with new money
    async with database.write() as session:
        program = await session.get(Program, world.program.id)
        assert program is not None
        await earn(session, program, world.alice, 6_000)
        assert await service.run_scheduled_payouts(session, settings, now=datetime(2026, 3, 25, tzinfo=UTC)) == 1
    # ...carol's cool-down ended on the 20th, so the run on the 25th pays her; alice waits for April
    assert await _payouts(database) == [(world.alice.id, 7_000, "schedule"), (carol.id, 9_000, "schedule")]
    async with database.write() as session:
        assert await service.run_scheduled_payouts(session, settings, now=datetime(2026, 4, 15, tzinfo=UTC)) == 1
    assert (world.alice.id, 6_000, "schedule") in await _payouts(database)


async def service_set_unconfirmed(database: Database, settings: Settings, partner: Partner) -> None:
    """A PayPal method whose confirmation email was never answered."""
    async with database.write() as session:
        fresh = await session.get(Partner, partner.id)
        assert fresh is not None
        await service.set_method(
            session, settings, fresh, currency="USD", method="paypal",
            details={"email": "dave@example.com"}, now=datetime(2026, 1, 1, tzinfo=UTC),
        )  # fmt: skip
