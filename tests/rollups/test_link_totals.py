"""`rollups.service.link_totals`: a link's days summed over a period, by the database."""

from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa

from partners.db.session import Database
from partners.rollups.models import LinkDay
from partners.rollups.service import LinkTotals, _link_totals_query, link_totals
from partners.settings import Settings
from partners.tracking.models import TrackingLink
from tests.factories import create_partner, create_program

D1, D2, D3, D4 = date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 4)


async def test_a_links_days_are_summed_over_the_period(database: Database, settings: Settings) -> None:
    async with database.write() as session:
        program, tiers = await create_program(session, settings)
        partner = await create_partner(session, program, tiers["starter"])
        busy = TrackingLink(partner_id=partner.id, code="busy", destination_url="https://namaskah.app/", sub_ids={})
        quiet = TrackingLink(partner_id=partner.id, code="quiet", destination_url="https://namaskah.app/", sub_ids={})
        session.add_all([busy, quiet])
        await session.flush()
        # Two visitors: one last seen on day 1, one seen on day 1 and again on day 3 (its last day).
        session.add_all(
            [
                LinkDay(link_id=busy.id, day=D1, clicks=3, bot_clicks=1, visitors=1, signups=1, buyers=0),
                LinkDay(link_id=busy.id, day=D2, clicks=0, bot_clicks=2, visitors=0, signups=0, buyers=0),
                LinkDay(link_id=busy.id, day=D3, clicks=2, bot_clicks=0, visitors=1, signups=1, buyers=1),
                LinkDay(link_id=quiet.id, day=D3, clicks=1, bot_clicks=0, visitors=1, signups=0, buyers=0),
            ]
        )
        await session.flush()
        ids = [busy.id, quiet.id]
        everything = await link_totals(session, ids, None, None)
        first_two_days = await link_totals(session, ids, D1, D2)
        from_day_two = await link_totals(session, ids, D2, D3)
        after = await link_totals(session, ids, D4, None)

    assert everything == {
        busy.id: LinkTotals(clicks=5, bot_clicks=3, visitors=2, signups=2, buyers=1),
        quiet.id: LinkTotals(clicks=1, bot_clicks=0, visitors=1, signups=0, buyers=0),
    }
    # Day 3 saw a visitor again: how many distinct visitors days 1-2 had is not in the rollup (None), and the
    # quiet link, with nothing in the period, is left out.
    assert first_two_days == {busy.id: LinkTotals(clicks=3, bot_clicks=3, visitors=None, signups=1, buyers=0)}
    assert from_day_two[busy.id] == LinkTotals(clicks=2, bot_clicks=2, visitors=1, signups=1, buyers=1)
    assert after == {}


@pytest.mark.parametrize("from_first", [False, True])
@pytest.mark.parametrize("to_last", [False, True])
async def test_link_totals_are_read_from_an_index_alone(database: Database, from_first: bool, to_last: bool) -> None:
    """Every column the totals read is in `ix_rollup_link_days_totals`: no table page is read (the planner's other
    plans turned off on PostgreSQL, where the test's tiny table would be scanned)."""
    query = _link_totals_query(from_first, to_last).params(link_ids=[1, 2], first=D1, last=D3)
    sql = query.compile(dialect=database.engine.dialect, compile_kwargs={"literal_binds": True})
    async with database.write() as session:
        if database.dialect == "postgresql":
            await session.execute(sa.text("SET LOCAL enable_seqscan = off"))
            await session.execute(sa.text("SET LOCAL enable_bitmapscan = off"))
            plan = "\n".join(await session.scalars(sa.text(f"EXPLAIN {sql}")))
            assert "Index Only Scan using ix_rollup_link_days_totals" in plan, plan
        else:
            plan = "\n".join(row[-1] for row in await session.execute(sa.text(f"EXPLAIN QUERY PLAN {sql}")))
            assert "USING COVERING INDEX ix_rollup_link_days_totals" in plan, plan
