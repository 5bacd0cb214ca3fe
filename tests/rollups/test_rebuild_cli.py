"""`partners rebuild-rollups` recounts rollups that disagree with the raw tables (an upgrade that changed what
they count, or damage) in one go, with a line per table."""

from __future__ import annotations

import sqlalchemy as sa
from typer.testing import CliRunner

from partners.cli import app
from partners.db.session import Database
from partners.rollups import service as rollups
from partners.rollups.models import PartnerBuyer, PartnerDay, PartnerDayRevenue
from partners.settings import Settings
from tests.commissions.support import make_customer, make_purchase
from tests.factories import create_partner, create_program, with_database

runner = CliRunner()


async def purchases_with_damaged_rollups(database: Database, settings: Settings) -> None:
    async with database.write() as session:
        program, tiers = await create_program(session, settings)
        partner = await create_partner(session, program, tiers["starter"])
        for amount, refunded in ((1_000, 0), (2_000, 2_000)):
            await make_purchase(session, await make_customer(session, program, partner), amount, refunded=refunded)
    async with database.write() as session:
        await session.execute(sa.delete(PartnerBuyer))
        await session.execute(sa.update(PartnerDay).values(buyers=7))
        await session.execute(sa.delete(PartnerDayRevenue))


async def differences(database: Database) -> dict[str, bool]:
    async with database.read() as session:
        compared = await rollups.stored_and_recounted(session)
    return {table: stored != recounted for table, (stored, recounted) in compared.items()}


def test_rebuild_rollups_recounts_them_from_the_raw_tables(cli_database: str, settings: Settings) -> None:
    with_database(cli_database, lambda database: purchases_with_damaged_rollups(database, settings))
    assert with_database(cli_database, differences) == {
        "visitors": False,
        "buyers": True,
        "link_visitors": False,
        "days": True,
        "revenue": True,
        "commissions": False,
        "link_days": False,
    }

    result = runner.invoke(app, ["rebuild-rollups"])

    assert result.exit_code == 0, result.output
    assert "rollup_partner_buyers: 1 rows" in result.output  # the customer refunded in full is no buyer
    assert "rollup_partner_revenue: 1 rows" in result.output
    assert "rollups rebuilt" in result.output
    assert not any(with_database(cli_database, differences).values())
